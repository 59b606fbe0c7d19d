"""The workload: idempotent acks=all producers whose every value names its producer and
sequence, consumers in a group committing offsets, and an observer that records the
metadata (leaders, epochs, ISRs) and the group's committed offsets every second."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from .history import History

GROUP = "chaos-group"


def _silent_logger():
    import logging

    logger = logging.getLogger("librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _file_logger(name: str, path):
    """librdkafka's debug lines (`--client-debug`) for one client, in their own file."""
    import logging

    logger = logging.getLogger(f"librdkafka.{name}")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(created).3f %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


class ProducerWorker(threading.Thread):
    """Produces `rate` unique values per second; a fatal idempotence error (the producer
    must be recreated) starts a new generation with its own values."""

    def __init__(self, index: int, bootstrap: str, topic: str, history: History, rate: float,
                 debug: str | None = None, debug_dir=None):
        super().__init__(name=f"producer-{index}", daemon=True)
        self.debug = debug
        self.debug_dir = debug_dir
        self.index = index
        self.bootstrap = bootstrap
        self.topic = topic
        self.history = history
        self.rate = rate
        self.stop_event = threading.Event()
        self.generation = 0
        self.fatal = threading.Event()
        self.errors = 0

    def _producer(self) -> Producer:
        def on_error(err: KafkaError) -> None:
            self._on_fatal(err)

        conf = {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "request.timeout.ms": 10000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 1000,
            "socket.connection.setup.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 2000,
            "error_cb": on_error,
            "logger": _silent_logger(),
        }
        if self.debug:
            conf["debug"] = self.debug
            conf["logger"] = _file_logger(
                f"{self.name}.{self.generation}",
                self.debug_dir / f"{self.name}.{self.generation}.log")
        return Producer(conf)

    def _on_fatal(self, err: object) -> None:
        """Starts a new generation after a fatal error, whichever way librdkafka reported it."""
        if isinstance(err, KafkaError) and err.fatal() and not self.fatal.is_set():
            self.history.add("info", "producer-fatal", self.name, error=str(err))
            self.fatal.set()

    def run(self) -> None:
        producer = self._producer()
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.time()
        while not self.stop_event.is_set():
            if self.fatal.is_set():
                producer.flush(10)
                self.generation += 1
                self.fatal.clear()
                producer = self._producer()
                seq = 0
            value = f"p{self.index}.{self.generation}.{seq}"
            proc = f"{self.name}.{self.generation}"
            self.history.add("invoke", "produce", proc, value=value, seq=seq)

            def on_delivery(err, msg, value=value, seq=seq, proc=proc):
                if err is None:
                    # offset None: an "implicit ack". A request timed out, a later one of
                    # the same producer and partition succeeded, so librdkafka knows the
                    # earlier records were written but not where.
                    self.history.add("ok", "produce", proc, value=value, seq=seq,
                                     partition=msg.partition(), offset=msg.offset())
                else:
                    # Not knowing whether a failed delivery was written, the checker lets
                    # it appear once or not at all.
                    self.errors += 1
                    self.history.add("info", "produce", proc, value=value, seq=seq,
                                     error=str(err))

            try:
                producer.produce(self.topic, key=value.encode(), value=value.encode(),
                                 on_delivery=on_delivery)
                seq += 1
            except BufferError:
                self.history.add("fail", "produce", proc, value=value, seq=seq,
                                 error="local queue full")
            except KafkaException as e:
                self.history.add("fail", "produce", proc, value=value, seq=seq, error=str(e))
                self._on_fatal(e.args[0] if e.args else None)
            try:
                producer.poll(0)
            except KafkaException as e:
                # confluent-kafka raises a fatal error from poll() as well as through error_cb.
                self._on_fatal(e.args[0] if e.args else None)
            next_at += interval
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.time()
        remaining = producer.flush(120)
        if remaining:
            self.history.add("info", "producer-unflushed", self.name, count=remaining)


class ConsumerWorker(threading.Thread):
    """A group member reading from the committed offsets and committing what it read,
    synchronously, every second and when partitions are revoked."""

    def __init__(self, index: int, bootstrap: str, topic: str, history: History):
        super().__init__(name=f"consumer-{index}", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.history = history
        self.stop_event = threading.Event()
        self.positions: dict[int, int] = {}

    def _commit(self, consumer: Consumer, why: str) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(self.positions.items())]
        if not offsets:
            return
        self.history.add("invoke", "commit", self.name, why=why,
                         offsets={tp.partition: tp.offset for tp in offsets})
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
            failed = [tp for tp in result or [] if tp.error]
            if failed:
                self.history.add("fail", "commit", self.name, error=str(failed[0].error))
            else:
                self.history.add("ok", "commit", self.name,
                                 offsets={tp.partition: tp.offset for tp in offsets})
        except KafkaException as e:
            self.history.add("fail", "commit", self.name, error=str(e))

    def run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "socket.connection.setup.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 2000,
            "logger": _silent_logger(),
        })

        def on_assign(c, partitions):
            self.history.add("ok", "assign", self.name, partitions=[p.partition for p in partitions])

        def on_revoke(c, partitions):
            self._commit(c, "revoke")
            for p in partitions:
                self.positions.pop(p.partition, None)
            self.history.add("ok", "revoke", self.name, partitions=[p.partition for p in partitions])

        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        last_commit = time.time()
        while not self.stop_event.is_set():
            msg = consumer.poll(0.5)
            if msg is not None:
                if msg.error():
                    self.history.add("info", "poll", self.name, error=str(msg.error()))
                else:
                    self.history.add("ok", "poll", self.name, partition=msg.partition(),
                                     offset=msg.offset(), value=msg.value().decode())
                    self.positions[msg.partition()] = msg.offset() + 1
            if time.time() - last_commit >= 1.0:
                self._commit(consumer, "periodic")
                last_commit = time.time()
        self._commit(consumer, "close")
        consumer.close()


class Observer(threading.Thread):
    """Every second: each live broker's view of the topic (leader, epoch, ISR) through
    Metadata v7, and the group's committed offsets."""

    def __init__(self, cluster, topic: str, partitions: int, history: History, metadata_v7):
        super().__init__(name="observer", daemon=True)
        self.cluster = cluster
        self.topic = topic
        self.history = history
        self.metadata_v7 = metadata_v7
        self.stop_event = threading.Event()
        self.partitions = partitions
        self.offsets_reader = Consumer({"bootstrap.servers": cluster.bootstrap(),
                                        "group.id": GROUP, "enable.auto.commit": False,
                                        "logger": _silent_logger()})

    def observe_metadata(self) -> None:
        for node in self.cluster.brokers():
            if not self.cluster.alive(node) or node.paused:
                continue
            md = fetch_metadata(self.cluster, node, self.topic, self.metadata_v7)
            if md is None:
                continue
            for p, info in md.items():
                self.history.add("ok", "metadata", f"observer@{node.name}", partition=p,
                                 leader=info["leader"], epoch=info["epoch"], isr=info["isr"],
                                 error=info["error"])

    def observe_committed(self) -> None:
        # A group member that never subscribes only asks the coordinator (OffsetFetch). The
        # AdminClient's list_consumer_group_offsets would be the obvious call, but its request
        # timeout racing a coordinator change trips an assertion in librdkafka
        # (rd_kafka_enq_once_del_source_return: eonce->refcnt > 0) and aborts the process.
        partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        try:
            result = self.offsets_reader.committed(partitions, timeout=3)
        except KafkaException:
            return  # an unavailable coordinator is normal under faults
        offsets = {tp.partition: tp.offset for tp in result if tp.offset >= 0 and not tp.error}
        if offsets:
            self.history.add("ok", "committed", "observer", offsets=offsets)

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            self.observe_metadata()
            self.observe_committed()
        self.observe_committed()  # what the members committed when they closed
        self.offsets_reader.close()


def fetch_metadata(cluster, node, topic: str, metadata_v7) -> dict | None:
    """`node`'s view of `topic`'s partitions, or None when it does not answer in 2 s."""
    from rawkafka import Conn  # noqa: E402 - compat/python is on sys.path (see run.py)

    try:
        with Conn(9092, host=cluster.addr(node), timeout=2) as conn:
            md = metadata_v7(conn, [topic])
    except (OSError, ValueError, ConnectionError):
        return None
    err, parts = md["topics"].get(topic, (3, {}))
    return parts if err == 0 else None
