//! Size-prefixed frames: Kafka's 4-byte big-endian length followed by that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest chunk reserved at once while reading a frame body: memory grows with bytes actually received,
/// never with the length a peer merely claims.
const READ_CHUNK: usize = 64 * 1024;
/// api_key + api_version + correlation_id + client_id length: no valid request header is shorter.
pub const MIN_REQUEST_FRAME: usize = 10;

/// Why a connection's byte stream cannot be read as Kafka frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is larger than socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size {size} is shorter than a request header ({MIN_REQUEST_FRAME} bytes)")]
    TooShort { size: usize },
    #[error("connection closed in the middle of a frame ({received} of {expected} bytes)")]
    Truncated { received: usize, expected: usize },
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame body. Returns `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut len_bytes = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut len_bytes[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                received: filled,
                expected: 4,
            });
        }
        filled += n;
    }
    let size = i32::from_be_bytes(len_bytes);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max_size {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max: max_size,
        });
    }
    if size < MIN_REQUEST_FRAME {
        return Err(FrameError::TooShort { size });
    }
    let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK));
    while buf.len() < size {
        let want = (size - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let n = reader.take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                received: buf.len(),
                expected: size,
            });
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        let mut cursor = bytes;
        read_frame(&mut cursor, max).await
    }

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut data = 12i32.to_be_bytes().to_vec();
        data.extend_from_slice(&[7u8; 12]);
        let mut cursor = &data[..];
        let frame = read_frame(&mut cursor, 100)
            .await
            .expect("ok")
            .expect("frame");
        assert_eq!(frame.len(), 12);
        assert!(read_frame(&mut cursor, 100).await.expect("ok").is_none());
    }

    #[tokio::test]
    async fn rejects_bad_lengths() {
        assert!(matches!(
            read(&(-1i32).to_be_bytes(), 100).await,
            Err(FrameError::Negative(-1))
        ));
        assert!(matches!(
            read(&101i32.to_be_bytes(), 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            read(&0i32.to_be_bytes(), 100).await,
            Err(FrameError::TooShort { size: 0 })
        ));
        assert!(matches!(
            read(&[0, 0], 100).await,
            Err(FrameError::Truncated { .. })
        ));
    }

    #[tokio::test]
    async fn claimed_length_is_not_preallocated() {
        // Claims 100 MiB but sends 20 bytes: must fail as truncated without reserving the claim.
        let mut data = (100 * 1024 * 1024i32).to_be_bytes().to_vec();
        data.extend_from_slice(&[1u8; 20]);
        match read(&data, 200 * 1024 * 1024).await {
            Err(FrameError::Truncated { received, .. }) => assert_eq!(received, 20),
            other => panic!("unexpected {other:?}"),
        }
    }
}
