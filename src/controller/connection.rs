//! A lazily opened TCP connection that carries one Kafka-framed request and its response at a time: what
//! a controller uses to reach another controller (Raft RPCs) and a broker to reach the active controller.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::network::read_frame;

/// A connection to one address, opened on first use and again after any failure.
pub struct FramedConnection {
    address: String,
    max_response: usize,
    stream: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
}

impl FramedConnection {
    /// `max_response` bounds the response frames read.
    pub fn new(address: String, max_response: usize) -> FramedConnection {
        FramedConnection {
            address,
            max_response,
            stream: None,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `body` as one size-prefixed frame and reads one response frame (without its size prefix)
    /// within `timeout` (an `io::ErrorKind::TimedOut` error past it). The stream is taken out for the
    /// exchange and kept only after a whole response was read: a failure, a timeout or a caller giving up
    /// half-way drops it, so no later request can be answered with an earlier request's response.
    pub async fn exchange(&mut self, body: &[u8], timeout: Duration) -> io::Result<Bytes> {
        let stream = self.stream.take();
        let (address, max_response) = (&self.address, self.max_response);
        let attempt = async move {
            let (mut reader, mut writer) = match stream {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(address).await?;
                    stream.set_nodelay(true)?;
                    let (read, write) = stream.into_split();
                    (BufReader::new(read), write)
                }
            };
            let size = i32::try_from(body.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
            // One write, so the frame leaves in as few segments as it can (the socket is NODELAY).
            let mut frame = Vec::with_capacity(body.len() + 4);
            frame.extend_from_slice(&size.to_be_bytes());
            frame.extend_from_slice(body);
            writer.write_all(&frame).await?;
            match read_frame(&mut reader, max_response).await {
                Ok(Some(frame)) => Ok((frame, (reader, writer))),
                Ok(None) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection",
                )),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok((frame, stream))) => {
                self.stream = Some(stream);
                Ok(frame)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no response from {} within {timeout:?}", self.address),
            )),
        }
    }

    /// Forgets the stream (after a response that did not match its request).
    pub fn reset(&mut self) {
        self.stream = None;
    }
}
