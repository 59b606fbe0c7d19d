"""Producer process for the crash test.

Produces unique values (value_for(seq): "<seq>|" + padding, so that 1 MiB segments roll
during the test) with acks=all and idempotence on, and appends one line per delivery
report to OUT: "OK <partition> <offset> <seq>" or "ERR <seq> <error>".
It keeps producing across broker crashes (the client reconnects and retries) until the
file STOP exists, then flushes everything, writes "DONE" and exits.

usage: crash_producer.py BOOTSTRAP TOPIC OUT STOP [confluent|kafka-python]
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Producer


PADDING = "x" * 200


def value_for(seq: int) -> bytes:
    return f"{seq}|{PADDING}".encode()


def main() -> int:
    bootstrap, topic, out_path, stop_path = sys.argv[1:5]
    client = sys.argv[5] if len(sys.argv) > 5 else "confluent"
    if client == "kafka-python":
        return run_kafka_python(bootstrap, topic, out_path, stop_path)
    return run_confluent(bootstrap, topic, out_path, stop_path)


def run_kafka_python(bootstrap, topic, out_path, stop_path) -> int:
    import logging
    import threading
    import time

    import kafka

    logging.basicConfig(level=logging.ERROR)
    out = open(out_path, "a", buffering=1)
    lock = threading.Lock()
    p = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                            linger_ms=5, delivery_timeout_ms=300000, request_timeout_ms=10000,
                            retry_backoff_ms=50, reconnect_backoff_ms=50,
                            reconnect_backoff_max_ms=500, max_block_ms=300000)
    pending = threading.Semaphore(5000)

    def ok(seq):
        def cb(md):
            with lock:
                out.write(f"OK {md.partition} {md.offset} {seq}\n")
            pending.release()
        return cb

    def failed(seq):
        def cb(exc):
            with lock:
                out.write(f"ERR {seq} {type(exc).__name__}:{str(exc).replace(chr(10), ' ')}\n")
            pending.release()
        return cb

    seq = 0
    while not os.path.exists(stop_path):
        if not pending.acquire(timeout=0.1):
            continue
        f = p.send(topic, key=str(seq % 97).encode(), value=value_for(seq))
        f.add_callback(ok(seq))
        f.add_errback(failed(seq))
        seq += 1
        if seq % 50 == 0:
            time.sleep(0.005)
    p.flush(300)
    p.close(timeout=30)
    with lock:
        out.write(f"DONE produced={seq} undelivered=0\n")
    out.close()
    return 0


def run_confluent(bootstrap, topic, out_path, stop_path) -> int:
    out = open(out_path, "a", buffering=1)

    def on_delivery(err, msg):
        value = msg.value().split(b"|", 1)[0].decode()
        if err is None:
            out.write(f"OK {msg.partition()} {msg.offset()} {value}\n")
        else:
            out.write(f"ERR {value} {err.name()}:{err.str().replace(chr(10), ' ')}\n")

    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 300000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "retry.backoff.ms": 50,
        "retry.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": 5000,
        "queue.buffering.max.messages": 20000,
    })
    seq = 0
    while not os.path.exists(stop_path):
        for _ in range(50):
            try:
                p.produce(topic, key=str(seq % 97).encode(), value=value_for(seq),
                          on_delivery=on_delivery)
                seq += 1
            except BufferError:
                break
        p.poll(0.01)
    remaining = p.flush(300)
    out.write(f"DONE produced={seq} undelivered={remaining}\n")
    out.close()
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
