package kavka.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.RaftVoterEndpoint;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Drives the official Java Kafka client (kafka-clients) through scenarios named on the
 * command line and prints the results as JSON lines on stdout, for compat/java's pytest suite.
 *
 * <p>One-shot mode: {@code Driver COMMAND --bootstrap HOST:PORT [--opt value]...} runs one
 * command, prints its reply and exits (status 1 when the reply has "ok": false).
 *
 * <p>Session mode: {@code Driver repl --bootstrap HOST:PORT} reads one command per stdin line
 * (the same syntax without --bootstrap) and answers each with one {"type":"reply",...} line.
 * Long-lived consumers started with {@code consumer-start} run on their own threads and
 * report {"type":"event",...} lines (assignment changes, records, commits) as they happen.
 * One JVM then serves a whole test, which keeps the suite fast.
 *
 * <p>{@code --client-config FILE} (either mode) loads a Java properties file, e.g. the
 * {@code <name>-client-ssl.properties} that {@code kavka certs client} writes, whose entries are
 * added to every client the driver creates (admin, producers, consumers), after and so over the
 * driver's own settings: security.protocol, ssl.* and timeouts come from there.
 *
 * <p>Commands: produce, consume, consumer-start, consumer-stop, consumer-state, create-topics,
 * delete-topics, list-topics, describe-topics, describe-cluster, describe-quorum, end-offsets,
 * list-groups, describe-groups, list-group-offsets, delete-groups, alter-scram, create-acls.
 * See {@link #run}.
 */
public final class Driver {
    private static final PrintStream OUT =
            new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true,
                    StandardCharsets.UTF_8);

    private final String bootstrap;
    /** Entries of --client-config, put into every client's properties last. */
    private final Properties clientConfig;
    private Admin admin;
    private final Map<String, ConsumerWorker> consumers = new HashMap<>();

    Driver(String bootstrap, Properties clientConfig) {
        this.bootstrap = bootstrap;
        this.clientConfig = clientConfig;
    }

    /** The Java properties file at path (ISO-8859-1 escapes, as Kafka's tools read it). */
    static Properties loadProperties(String path) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(Paths.get(path))) {
            p.load(in);
        }
        return p;
    }

    /** p with the --client-config entries added over it. */
    Properties withClientConfig(Properties p) {
        p.putAll(clientConfig);
        return p;
    }

    static synchronized void emit(Map<String, Object> line) {
        OUT.println(Json.write(line));
    }

    static void event(String kind, String name, Object... kv) {
        Map<String, Object> m = Json.obj("type", "event", "event", kind, "name", name);
        m.putAll(Json.obj(kv));
        emit(m);
    }

    /** --key value pairs; a flag followed by another flag or by nothing means "true". */
    static Map<String, String> parseArgs(List<String> args) {
        Map<String, String> opts = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + a);
            }
            String key = a.substring(2);
            if (i + 1 < args.size() && !args.get(i + 1).startsWith("--")) {
                opts.put(key, args.get(++i));
            } else {
                opts.put(key, "true");
            }
        }
        return opts;
    }

    static String req(Map<String, String> o, String key) {
        String v = o.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + key);
        }
        return v;
    }

    static int intOpt(Map<String, String> o, String key, int dflt) {
        return o.containsKey(key) ? Integer.parseInt(o.get(key)) : dflt;
    }

    static String error(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    static String errorClass(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName();
    }

    public static void main(String[] argv) throws Exception {
        List<String> args = new ArrayList<>(Arrays.asList(argv));
        if (args.isEmpty()) {
            System.err.println("usage: Driver repl --bootstrap B [--client-config FILE]"
                    + " | Driver COMMAND --bootstrap B [--client-config FILE] [--opt v]...");
            System.exit(2);
        }
        String cmd = args.remove(0);
        Map<String, String> opts = parseArgs(args);
        Properties clientConfig = opts.containsKey("client-config")
                ? loadProperties(opts.get("client-config")) : new Properties();
        Driver d = new Driver(req(opts, "bootstrap"), clientConfig);
        opts.remove("bootstrap");
        opts.remove("client-config");
        int status = 0;
        try {
            if (cmd.equals("repl")) {
                d.repl();
            } else {
                Map<String, Object> reply = d.runSafely(cmd, opts);
                emit(reply);
                if (Boolean.FALSE.equals(reply.get("ok"))) {
                    status = 1;
                }
            }
        } finally {
            d.shutdown();
        }
        System.exit(status);
    }

    void repl() throws Exception {
        emit(Json.obj("type", "ready", "client", "kafka-clients",
                "version", org.apache.kafka.common.utils.AppInfoParser.getVersion()));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            List<String> words = new ArrayList<>(Arrays.asList(line.split("\\s+")));
            String cmd = words.remove(0);
            if (cmd.equals("quit")) {
                emit(Json.obj("type", "reply", "cmd", cmd, "ok", true));
                break;
            }
            Map<String, Object> reply;
            try {
                reply = runSafely(cmd, parseArgs(words));
            } catch (IllegalArgumentException e) {
                reply = Json.obj("type", "reply", "cmd", cmd, "ok", false, "error", error(e));
            }
            emit(reply);
        }
    }

    Map<String, Object> runSafely(String cmd, Map<String, String> opts) {
        Map<String, Object> reply = Json.obj("type", "reply", "cmd", cmd);
        try {
            Map<String, Object> out = run(cmd, opts);
            reply.put("ok", true);
            reply.putAll(out);
        } catch (Exception e) {
            reply.put("ok", false);
            reply.put("error", error(e));
            reply.put("error_class", errorClass(e));
        }
        return reply;
    }

    void shutdown() {
        for (ConsumerWorker w : consumers.values()) {
            w.stopAndJoin(10_000);
        }
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
        }
    }

    Admin admin() {
        if (admin == null) {
            Properties p = new Properties();
            p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
            p.put(AdminClientConfig.CLIENT_ID_CONFIG, "kavka-java-admin");
            admin = Admin.create(withClientConfig(p));
        }
        return admin;
    }

    Map<String, Object> run(String cmd, Map<String, String> o) throws Exception {
        switch (cmd) {
            case "produce": return produce(o);
            case "consume": return consume(o);
            case "consumer-start": return consumerStart(o);
            case "consumer-stop": return consumerStop(o);
            case "consumer-state": return consumerState(o);
            case "create-topics": return createTopics(o);
            case "delete-topics": return deleteTopics(o);
            case "list-topics": return listTopics(o);
            case "describe-topics": return describeTopics(o);
            case "describe-cluster": return describeCluster();
            case "describe-quorum": return describeQuorum();
            case "end-offsets": return endOffsets(o);
            case "list-groups": return listGroups();
            case "describe-groups": return describeGroups(o);
            case "list-group-offsets": return listGroupOffsets(o);
            case "delete-groups": return deleteGroups(o);
            case "alter-scram": return alterScram(o);
            case "create-acls": return createAcls(o);
            default: throw new IllegalArgumentException("unknown command: " + cmd);
        }
    }

    // ------------------------------------------------------------------ producer

    /**
     * produce --topic T --count N [--acks all|1|0] [--compression none|gzip|snappy|lz4|zstd]
     * [--idempotent true|false] [--partition P] [--prefix S] [--value-bytes N] [--linger-ms N]
     * Record i has key "{prefix}-k{i}" and value "{prefix}-v{i}" padded to --value-bytes.
     * Replies with the acknowledged (partition, offset) of every record, in send order.
     */
    Map<String, Object> produce(Map<String, String> o) throws Exception {
        String topic = req(o, "topic");
        int count = intOpt(o, "count", 10);
        String prefix = o.getOrDefault("prefix", "m");
        int valueBytes = intOpt(o, "value-bytes", 0);
        Integer partition = o.containsKey("partition") ? Integer.valueOf(o.get("partition")) : null;
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, o.getOrDefault("acks", "all"));
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, o.getOrDefault("compression", "none"));
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, o.getOrDefault("idempotent", "false"));
        p.put(ProducerConfig.LINGER_MS_CONFIG, o.getOrDefault("linger-ms", "5"));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "kavka-java-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        List<Object> acked = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(withClientConfig(p))) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String key = prefix + "-k" + i;
                futures.add(producer.send(new ProducerRecord<>(topic, partition, key, value(prefix, i, valueBytes))));
            }
            producer.flush();
            for (Future<RecordMetadata> f : futures) {
                RecordMetadata md = f.get(30, TimeUnit.SECONDS);
                acked.add(Arrays.asList(md.partition(), md.offset()));
            }
        }
        return Json.obj("topic", topic, "count", count, "acked", acked);
    }

    static String value(String prefix, int i, int bytes) {
        StringBuilder sb = new StringBuilder(prefix).append("-v").append(i);
        // Compressible padding, so that the codec really has something to do.
        while (sb.length() < bytes) {
            sb.append(" payload-").append(i % 10);
        }
        if (bytes > 0 && sb.length() > bytes) {
            sb.setLength(bytes);
        }
        return sb.toString();
    }

    // ------------------------------------------------------------------ consumers

    Properties consumerProps(String bootstrap, Map<String, String> o, String clientId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, req(o, "group"));
        String protocol = o.getOrDefault("protocol", "classic");
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, o.getOrDefault("offset-reset", "earliest"));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, o.getOrDefault("max-poll-records", "500"));
        if (protocol.equals("classic")) {
            // Session timeout and heartbeat are broker-side settings under the consumer protocol
            // (the client rejects them there).
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, o.getOrDefault("session-timeout-ms", "10000"));
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
            if (o.containsKey("assignor")) {
                p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, o.get("assignor"));
            }
        } else if (o.containsKey("remote-assignor")) {
            p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, o.get("remote-assignor"));
        }
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return withClientConfig(p);
    }

    static List<Object> partitions(Collection<TopicPartition> tps) {
        List<TopicPartition> sorted = new ArrayList<>(tps);
        sorted.sort((a, b) -> a.topic().equals(b.topic())
                ? Integer.compare(a.partition(), b.partition()) : a.topic().compareTo(b.topic()));
        List<Object> out = new ArrayList<>();
        for (TopicPartition tp : sorted) {
            out.add(Arrays.asList(tp.topic(), tp.partition()));
        }
        return out;
    }

    static List<Object> recordList(ConsumerRecords<String, String> recs) {
        List<Object> out = new ArrayList<>();
        for (ConsumerRecord<String, String> r : recs) {
            out.add(Arrays.asList(r.topic(), r.partition(), r.offset(), r.key(), r.value()));
        }
        return out;
    }

    /**
     * consume --topic T --group G [--protocol classic|consumer] --count N [--timeout S]
     * Subscribes, polls until N records arrived or the timeout passed, commits synchronously
     * after each non-empty poll, and replies with the records and the rebalance callbacks seen.
     */
    Map<String, Object> consume(Map<String, String> o) {
        String topic = req(o, "topic");
        int count = intOpt(o, "count", 1);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(intOpt(o, "timeout", 20));
        List<Object> records = new ArrayList<>();
        List<Object> rebalances = new ArrayList<>();
        Map<String, Object> reply = Json.obj("records", records);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, o, "kavka-java-consume"))) {
            c.subscribe(Collections.singletonList(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                    rebalances.add(Json.obj("revoked", partitions(ps)));
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    rebalances.add(Json.obj("assigned", partitions(ps)));
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> ps) {
                    rebalances.add(Json.obj("lost", partitions(ps)));
                }
            });
            while (records.size() < count && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                if (!recs.isEmpty()) {
                    records.addAll(recordList(recs));
                    c.commitSync();
                }
            }
            reply.put("assignment", partitions(c.assignment()));
            reply.put("timed_out", records.size() < count);
            // Callbacks seen while polling; close() then revokes everything as it leaves.
            reply.put("rebalances", new ArrayList<>(rebalances));
        }
        return reply;
    }

    Map<String, Object> consumerStart(Map<String, String> o) {
        String name = req(o, "name");
        if (consumers.containsKey(name)) {
            throw new IllegalArgumentException("consumer " + name + " already exists");
        }
        ConsumerWorker w = new ConsumerWorker(name, req(o, "topic"),
                new KafkaConsumer<>(consumerProps(bootstrap, o, "kavka-java-" + name)));
        consumers.put(name, w);
        w.thread.start();
        return Json.obj("name", name);
    }

    ConsumerWorker worker(Map<String, String> o) {
        ConsumerWorker w = consumers.get(req(o, "name"));
        if (w == null) {
            throw new IllegalArgumentException("no consumer named " + o.get("name"));
        }
        return w;
    }

    Map<String, Object> consumerStop(Map<String, String> o) {
        ConsumerWorker w = worker(o);
        consumers.remove(w.name);
        boolean stopped = w.stopAndJoin(30_000);
        return Json.obj("name", w.name, "stopped", stopped, "consumed", w.consumed,
                "close_error", w.closeError, "failure", w.failure);
    }

    Map<String, Object> consumerState(Map<String, String> o) {
        ConsumerWorker w = worker(o);
        return Json.obj("name", w.name, "assignment", w.assignment, "consumed", w.consumed,
                "alive", w.thread.isAlive(), "failure", w.failure);
    }

    /** A subscribed consumer on its own thread: polls, commits after every non-empty poll, and
     *  reports rebalance callbacks and records as events. */
    static final class ConsumerWorker implements Runnable, ConsumerRebalanceListener {
        final String name;
        final String topic;
        final KafkaConsumer<String, String> consumer;
        final Thread thread;
        volatile boolean stop;
        volatile List<Object> assignment = Collections.emptyList();
        volatile long consumed;
        volatile String failure;
        volatile String closeError;

        ConsumerWorker(String name, String topic, KafkaConsumer<String, String> consumer) {
            this.name = name;
            this.topic = topic;
            this.consumer = consumer;
            this.thread = new Thread(this, "consumer-" + name);
            this.thread.setDaemon(true);
        }

        @Override
        public void run() {
            try {
                consumer.subscribe(Collections.singletonList(topic), this);
                while (!stop) {
                    ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(100));
                    if (!recs.isEmpty()) {
                        consumed += recs.count();
                        String commit = "ok";
                        Map<String, Object> offsets = new TreeMap<>();
                        try {
                            Map<TopicPartition, OffsetAndMetadata> pos = new HashMap<>();
                            for (TopicPartition tp : recs.partitions()) {
                                List<ConsumerRecord<String, String>> l = recs.records(tp);
                                pos.put(tp, new OffsetAndMetadata(l.get(l.size() - 1).offset() + 1));
                                offsets.put(tp.toString(), l.get(l.size() - 1).offset() + 1);
                            }
                            consumer.commitSync(pos);
                        } catch (Exception e) {
                            commit = error(e);
                        }
                        event("records", name, "records", recordList(recs), "commit", commit,
                                "committed", offsets);
                    }
                    assignment = partitions(consumer.assignment());
                }
            } catch (org.apache.kafka.common.errors.WakeupException e) {
                // stop requested
            } catch (Exception e) {
                failure = error(e);
                event("failure", name, "error", failure);
            } finally {
                try {
                    consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(10)));
                } catch (Exception e) {
                    closeError = error(e);
                }
                event("closed", name, "consumed", consumed);
            }
        }

        boolean stopAndJoin(long millis) {
            stop = true;
            consumer.wakeup();
            try {
                thread.join(millis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return !thread.isAlive();
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> ps) {
            assignment = partitions(consumer.assignment());
            event("revoked", name, "partitions", partitions(ps));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
            assignment = partitions(consumer.assignment());
            event("assigned", name, "partitions", partitions(ps), "assignment", assignment);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> ps) {
            event("lost", name, "partitions", partitions(ps));
        }
    }

    // ------------------------------------------------------------------ admin

    static List<String> names(Map<String, String> o, String key) {
        return Arrays.asList(req(o, key).split(","));
    }

    /** create-topics --topic T[,T2] [--partitions N] [--rf N]: per-topic "ok" or error class. */
    Map<String, Object> createTopics(Map<String, String> o) {
        List<NewTopic> topics = new ArrayList<>();
        for (String t : names(o, "topic")) {
            topics.add(new NewTopic(t, intOpt(o, "partitions", 1), (short) intOpt(o, "rf", 1)));
        }
        Map<String, Object> results = new TreeMap<>();
        admin().createTopics(topics).values().forEach((t, f) -> results.put(t, outcome(f)));
        return Json.obj("results", results);
    }

    Map<String, Object> deleteTopics(Map<String, String> o) {
        Map<String, Object> results = new TreeMap<>();
        admin().deleteTopics(names(o, "topic")).topicNameValues()
                .forEach((t, f) -> results.put(t, outcome(f)));
        return Json.obj("results", results);
    }

    static String outcome(org.apache.kafka.common.KafkaFuture<?> f) {
        try {
            f.get(30, TimeUnit.SECONDS);
            return "ok";
        } catch (Exception e) {
            return errorClass(e);
        }
    }

    Map<String, Object> listTopics(Map<String, String> o) throws Exception {
        ListTopicsOptions opts = new ListTopicsOptions().listInternal(Boolean.parseBoolean(
                o.getOrDefault("internal", "false")));
        List<String> topics = new ArrayList<>(admin().listTopics(opts).names().get(30, TimeUnit.SECONDS));
        Collections.sort(topics);
        return Json.obj("topics", topics);
    }

    static List<Object> nodeIds(List<Node> nodes) {
        List<Object> out = new ArrayList<>();
        for (Node n : nodes) {
            out.add(n.id());
        }
        return out;
    }

    Map<String, Object> describeTopics(Map<String, String> o) {
        Map<String, Object> topics = new TreeMap<>();
        admin().describeTopics(names(o, "topic")).topicNameValues().forEach((t, f) -> {
            try {
                TopicDescription d = f.get(30, TimeUnit.SECONDS);
                List<Object> parts = new ArrayList<>();
                for (TopicPartitionInfo pi : d.partitions()) {
                    parts.add(Json.obj("partition", pi.partition(),
                            "leader", pi.leader() == null ? null : pi.leader().id(),
                            "replicas", nodeIds(pi.replicas()), "isr", nodeIds(pi.isr())));
                }
                topics.put(t, Json.obj("name", d.name(), "internal", d.isInternal(),
                        "topic_id", d.topicId().toString(), "partitions", parts));
            } catch (Exception e) {
                topics.put(t, Json.obj("error", errorClass(e)));
            }
        });
        return Json.obj("topics", topics);
    }

    Map<String, Object> describeCluster() throws Exception {
        DescribeClusterResult r = admin().describeCluster();
        List<Object> nodes = new ArrayList<>();
        for (Node n : r.nodes().get(30, TimeUnit.SECONDS)) {
            nodes.add(Json.obj("id", n.id(), "host", n.host(), "port", n.port(), "rack", n.rack()));
        }
        Node controller = r.controller().get(30, TimeUnit.SECONDS);
        return Json.obj("cluster_id", r.clusterId().get(30, TimeUnit.SECONDS), "nodes", nodes,
                "controller", controller == null ? null : controller.id());
    }

    /**
     * describe-quorum: Admin.describeMetadataQuorum(). Replies with the leader, its epoch, the high
     * watermark, the voters and observers (id, log end offset, timestamps or null when unknown) and
     * each voter's endpoints as [name, host, port].
     */
    Map<String, Object> describeQuorum() throws Exception {
        QuorumInfo q = admin().describeMetadataQuorum().quorumInfo().get(30, TimeUnit.SECONDS);
        Map<String, Object> nodes = new TreeMap<>();
        q.nodes().forEach((id, n) -> {
            List<Object> endpoints = new ArrayList<>();
            for (RaftVoterEndpoint e : n.endpoints()) {
                endpoints.add(Arrays.asList(e.name(), e.host(), e.port()));
            }
            nodes.put(String.valueOf(id), endpoints);
        });
        return Json.obj("leader_id", q.leaderId(), "leader_epoch", q.leaderEpoch(),
                "high_watermark", q.highWatermark(), "voters", replicaStates(q.voters()),
                "observers", replicaStates(q.observers()), "nodes", nodes);
    }

    static List<Object> replicaStates(List<QuorumInfo.ReplicaState> states) {
        List<Object> out = new ArrayList<>();
        for (QuorumInfo.ReplicaState r : states) {
            out.add(Json.obj("id", r.replicaId(), "directory_id", r.replicaDirectoryId().toString(),
                    "log_end_offset", r.logEndOffset(),
                    "last_fetch_timestamp", r.lastFetchTimestamp().isPresent()
                            ? r.lastFetchTimestamp().getAsLong() : null,
                    "last_caught_up_timestamp", r.lastCaughtUpTimestamp().isPresent()
                            ? r.lastCaughtUpTimestamp().getAsLong() : null));
        }
        return out;
    }

    /** end-offsets --topic T --partitions N: the latest offset of each partition. */
    Map<String, Object> endOffsets(Map<String, String> o) throws Exception {
        String topic = req(o, "topic");
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (int p = 0; p < intOpt(o, "partitions", 1); p++) {
            req.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        Map<String, Object> out = new TreeMap<>();
        admin().listOffsets(req).all().get(30, TimeUnit.SECONDS)
                .forEach((tp, info) -> out.put(String.valueOf(tp.partition()), info.offset()));
        return Json.obj("offsets", out);
    }

    @SuppressWarnings("deprecation")
    Map<String, Object> listGroups() throws Exception {
        List<Object> groups = new ArrayList<>();
        Collection<ConsumerGroupListing> all = admin().listConsumerGroups().all().get(30, TimeUnit.SECONDS);
        List<ConsumerGroupListing> sorted = new ArrayList<>(all);
        sorted.sort((a, b) -> a.groupId().compareTo(b.groupId()));
        for (ConsumerGroupListing g : sorted) {
            groups.add(Json.obj("group_id", g.groupId(), "simple", g.isSimpleConsumerGroup(),
                    "state", g.groupState().map(Enum::name).orElse(null),
                    "type", g.type().map(Enum::name).orElse(null)));
        }
        return Json.obj("groups", groups);
    }

    Map<String, Object> describeGroups(Map<String, String> o) {
        Map<String, Object> groups = new TreeMap<>();
        admin().describeConsumerGroups(names(o, "group")).describedGroups().forEach((g, f) -> {
            try {
                ConsumerGroupDescription d = f.get(30, TimeUnit.SECONDS);
                List<Object> members = new ArrayList<>();
                for (MemberDescription m : d.members()) {
                    members.add(Json.obj("member_id", m.consumerId(), "client_id", m.clientId(),
                            "host", m.host(), "instance_id", Json.opt(m.groupInstanceId()),
                            "assignment", partitions(m.assignment().topicPartitions()),
                            "target_assignment", m.targetAssignment().isPresent()
                                    ? partitions(m.targetAssignment().get().topicPartitions()) : null,
                            "member_epoch", Json.opt(m.memberEpoch())));
                }
                members.sort((a, b) -> String.valueOf(((Map<?, ?>) a).get("client_id"))
                        .compareTo(String.valueOf(((Map<?, ?>) b).get("client_id"))));
                groups.put(g, Json.obj("group_id", d.groupId(), "state", d.groupState() == null ? null : d.groupState().name(),
                        "type", d.type() == null ? null : d.type().name(), "assignor", d.partitionAssignor(),
                        "simple", d.isSimpleConsumerGroup(),
                        "coordinator", d.coordinator() == null ? null : d.coordinator().id(),
                        "group_epoch", Json.opt(d.groupEpoch()), "members", members));
            } catch (Exception e) {
                groups.put(g, Json.obj("error", errorClass(e)));
            }
        });
        return Json.obj("groups", groups);
    }

    Map<String, Object> listGroupOffsets(Map<String, String> o) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offs = admin().listConsumerGroupOffsets(req(o, "group"))
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        List<Object> out = new ArrayList<>();
        for (TopicPartition tp : new TreeMap<String, TopicPartition>() {{
                for (TopicPartition t : offs.keySet()) {
                    put(t.topic() + "\u0000" + String.format("%09d", t.partition()), t);
                }
            }}.values()) {
            OffsetAndMetadata m = offs.get(tp);
            out.add(Arrays.asList(tp.topic(), tp.partition(), m == null ? null : m.offset()));
        }
        return Json.obj("offsets", out);
    }

    Map<String, Object> deleteGroups(Map<String, String> o) {
        Map<String, Object> results = new TreeMap<>();
        admin().deleteConsumerGroups(names(o, "group")).deletedGroups()
                .forEach((g, f) -> results.put(g, outcome(f)));
        return Json.obj("results", results);
    }

    /**
     * alter-scram --user U --password P [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]
     * [--iterations N]: Admin.alterUserScramCredentials with one upsertion; "ok" or the error
     * class of the user's result.
     */
    Map<String, Object> alterScram(Map<String, String> o) {
        String user = req(o, "user");
        org.apache.kafka.clients.admin.ScramMechanism mechanism =
                org.apache.kafka.clients.admin.ScramMechanism.fromMechanismName(
                        o.getOrDefault("mechanism", "SCRAM-SHA-512"));
        if (mechanism == org.apache.kafka.clients.admin.ScramMechanism.UNKNOWN) {
            throw new IllegalArgumentException("unknown --mechanism " + o.get("mechanism"));
        }
        org.apache.kafka.clients.admin.UserScramCredentialUpsertion up =
                new org.apache.kafka.clients.admin.UserScramCredentialUpsertion(user,
                        new org.apache.kafka.clients.admin.ScramCredentialInfo(mechanism,
                                intOpt(o, "iterations", 8192)),
                        req(o, "password"));
        Map<String, Object> results = new TreeMap<>();
        admin().alterUserScramCredentials(Collections.singletonList(up)).values()
                .forEach((u, f) -> results.put(u, outcome(f)));
        return Json.obj("results", results);
    }

    /**
     * create-acls --principal User:P --resource-type TOPIC|GROUP|CLUSTER|... --name N
     * --operation READ|WRITE|... [--pattern LITERAL|PREFIXED] [--permission ALLOW|DENY]
     * [--host H]: Admin.createAcls with one binding; "ok" or the error class.
     */
    Map<String, Object> createAcls(Map<String, String> o) {
        org.apache.kafka.common.acl.AclBinding binding = new org.apache.kafka.common.acl.AclBinding(
                new org.apache.kafka.common.resource.ResourcePattern(
                        org.apache.kafka.common.resource.ResourceType.fromString(req(o, "resource-type")),
                        req(o, "name"),
                        org.apache.kafka.common.resource.PatternType.fromString(
                                o.getOrDefault("pattern", "LITERAL"))),
                new org.apache.kafka.common.acl.AccessControlEntry(req(o, "principal"),
                        o.getOrDefault("host", "*"),
                        org.apache.kafka.common.acl.AclOperation.fromString(req(o, "operation")),
                        org.apache.kafka.common.acl.AclPermissionType.fromString(
                                o.getOrDefault("permission", "ALLOW"))));
        return Json.obj("result", outcome(admin().createAcls(Collections.singletonList(binding)).all()));
    }
}
