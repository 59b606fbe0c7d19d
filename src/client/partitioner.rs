//! Which partition a record goes to: the Java client's rule, so that `kavka console-producer` puts a key
//! where a Java, librdkafka (`murmur2_random`) or Kafka Streams producer puts it.

/// Kafka's murmur2 seed (`Utils.murmur2`).
const SEED: u32 = 0x9747_b28c;

/// The partition of a keyed record among `partitions`: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, SEED);
    ((hash & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java client's `Utils.murmur2` results (librdkafka's unit test carries them too).
    #[test]
    fn hashes_match_the_java_client() {
        let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs";
        let cases: [(&str, u32); 11] = [
            ("kafka", 0xd067cf64),
            ("giberish123456789", 0x8f552b0c),
            ("1234", 0x9fc97b14),
            ("234", 0xe7c009ca),
            ("34", 0x873930da),
            ("4", 0x5a4b5ca1),
            (unaligned, 0x78424f1c),
            (&unaligned[1..], 0x4a62b377),
            (&unaligned[2..], 0xe0e4e09e),
            (&unaligned[3..], 0x62b8b43f),
            ("", 0x106e08d9),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2::murmur2(key.as_bytes(), SEED), expected, "{key:?}");
        }
    }

    #[test]
    fn partition_is_positive_hash_modulo_count() {
        // 0xd067cf64 & 0x7fffffff = 0x5067cf64 = 1348980580; mod 3 = 1.
        assert_eq!(partition_for_key(b"kafka", 3), 1348980580 % 3);
        for n in 1..10 {
            assert!((0..n).contains(&partition_for_key(b"x", n)));
        }
    }
}
