//! A small writer of the MaxMind DB format (`.mmdb`), so tests can build the country database
//! they need instead of shipping (or downloading) a real one.
//!
//! Written from the format specification (<https://maxmind.github.io/MaxMind-DB/>, version 2.0):
//! a binary search tree over the bits of a 128-bit address, each node two records of 24, 28 or
//! 32 bits; sixteen zero bytes; a data section of typed values; then the marker
//! `\xAB\xCD\xEFMaxMind.com` and the metadata, a map in the data-section encoding.
//!
//! Like MaxMind's own databases the tree is IPv6 (`ip_version: 6`): an IPv4 network `a.b.c.d/n`
//! sits at `::a.b.c.d/(96+n)`, and `::ffff:0:0/96` (IPv4-mapped) and `2002::/16` (6to4) are
//! aliases pointing at that IPv4 subtree. Identical values are stored once.
//!
//! What it does not do: merge adjacent networks, write IPv4-only trees, or encode pointers,
//! signed integers, `uint128`, bytes or floats (nothing a country database needs).
//!
//! This file uses only `std` and `anyhow`: the proxy's unit tests include it with `#[path]`
//! (a dev-dependency on this crate would build the proxy twice).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, bail};

/// The metadata marker; the last occurrence in the file starts the metadata.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Between the search tree and the data section.
const SEPARATOR: [u8; 16] = [0; 16];
/// The build time written by default (2026-11-26T00:00:00Z), fixed so output is reproducible.
pub const BUILD_EPOCH: u64 = 1_795_651_200;

/// A value in the data section (the subset of the format's types a country record uses).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `utf8_string` (type 2).
    String(String),
    /// `double` (type 3).
    Double(f64),
    /// `uint16` (type 5).
    U16(u16),
    /// `uint32` (type 6).
    U32(u32),
    /// `uint64` (type 9).
    U64(u64),
    /// `boolean` (type 14).
    Bool(bool),
    /// `array` (type 11).
    Array(Vec<Value>),
    /// `map` (type 7); keys in the order given.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// A map from `(key, value)` pairs.
    pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A GeoIP2-Country-shaped record: `country` and `registered_country`, each with
    /// `names.en` and `iso_code` (in that order, so readers must skip a key to find the code).
    pub fn country(iso: &str) -> Value {
        Value::map([
            ("country", country_part(iso)),
            ("registered_country", country_part(iso)),
        ])
    }

    /// A record with only `registered_country` (MaxMind has such records for networks, e.g.
    /// some anycast ranges, whose users' country is unknown).
    pub fn registered_country(iso: &str) -> Value {
        Value::map([("registered_country", country_part(iso))])
    }
}

fn country_part(iso: &str) -> Value {
    Value::map([
        ("names", Value::map([("en", Value::str(iso))])),
        ("iso_code", Value::str(iso)),
    ])
}

/// Bits per search-tree record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSize {
    /// 6-byte nodes.
    Bits24,
    /// 7-byte nodes; the middle byte holds the high nibble of each record.
    Bits28,
    /// 8-byte nodes.
    Bits32,
}

impl RecordSize {
    fn bits(self) -> u16 {
        match self {
            RecordSize::Bits24 => 24,
            RecordSize::Bits28 => 28,
            RecordSize::Bits32 => 32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Empty,
    Node(usize),
    /// Index into `MmdbWriter::values`.
    Data(usize),
}

/// Builds one `.mmdb` file in memory.
#[derive(Debug)]
pub struct MmdbWriter {
    database_type: String,
    description: String,
    record_size: Option<RecordSize>,
    build_epoch: u64,
    /// The search tree; node 0 is the root.
    nodes: Vec<[Rec; 2]>,
    /// Encoded values, each once.
    values: Vec<Vec<u8>>,
    value_index: HashMap<Vec<u8>, usize>,
}

impl MmdbWriter {
    /// An empty database of the given type, e.g. `"GeoLite2-Country"`.
    pub fn new(database_type: &str) -> MmdbWriter {
        MmdbWriter {
            database_type: database_type.to_owned(),
            description: "Portcullis test data".to_owned(),
            record_size: None,
            build_epoch: BUILD_EPOCH,
            nodes: vec![[Rec::Empty; 2]],
            values: Vec::new(),
            value_index: HashMap::new(),
        }
    }

    /// Forces a record size; by default the smallest that fits is used.
    pub fn record_size(mut self, size: RecordSize) -> MmdbWriter {
        self.record_size = Some(size);
        self
    }

    /// Sets the metadata's `build_epoch` (default [`BUILD_EPOCH`]).
    pub fn build_epoch(mut self, epoch: u64) -> MmdbWriter {
        self.build_epoch = epoch;
        self
    }

    /// Maps a network (`192.0.2.0/24`, `2001:db8::/32`, or a bare address) to `value`.
    ///
    /// A network inserted after a wider one overrides it inside; a wider one inserted after a
    /// narrower one fills only what the narrower left empty. Networks inside the IPv4 aliases
    /// (`::ffff:0:0/96`, `2002::/16`) are refused: write the IPv4 network instead.
    pub fn insert(&mut self, network: &str, value: &Value) -> anyhow::Result<()> {
        let (bits, prefix) = parse_network(network)?;
        for (alias, alias_prefix) in ALIASES {
            if prefix >= alias_prefix && under(bits, alias, alias_prefix) {
                bail!("{network} is inside an IPv4 alias; insert the IPv4 network instead");
            }
        }
        let mut encoded = Vec::new();
        encode(&mut encoded, value)?;
        let data = match self.value_index.get(&encoded) {
            Some(&i) => i,
            None => {
                self.values.push(encoded.clone());
                self.value_index.insert(encoded, self.values.len() - 1);
                self.values.len() - 1
            }
        };
        if prefix == 0 {
            self.fill(0, data);
            return Ok(());
        }
        let node = self.walk(bits, prefix - 1);
        let bit = bit_at(bits, prefix - 1);
        match self.nodes[node][bit] {
            Rec::Node(n) => self.fill(n, data),
            Rec::Empty | Rec::Data(_) => self.nodes[node][bit] = Rec::Data(data),
        }
        Ok(())
    }

    /// Maps each `(network, ISO code)` to [`Value::country`].
    pub fn insert_countries(&mut self, entries: &[(&str, &str)]) -> anyhow::Result<()> {
        for (network, iso) in entries {
            self.insert(network, &Value::country(iso))?;
        }
        Ok(())
    }

    /// Follows the first `depth` bits of `bits` from the root, creating nodes on the way (a
    /// record holding data becomes a node whose both halves hold it), and returns the node
    /// reached.
    fn walk(&mut self, bits: u128, depth: u8) -> usize {
        let mut node = 0;
        for i in 0..depth {
            let bit = bit_at(bits, i);
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n,
                split @ (Rec::Empty | Rec::Data(_)) => {
                    self.nodes.push([split; 2]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n);
                    n
                }
            };
        }
        node
    }

    /// Gives `data` to every empty record under `node`.
    fn fill(&mut self, node: usize, data: usize) {
        for bit in 0..2 {
            match self.nodes[node][bit] {
                Rec::Empty => self.nodes[node][bit] = Rec::Data(data),
                Rec::Node(n) => self.fill(n, data),
                Rec::Data(_) => {}
            }
        }
    }

    /// Points the IPv4 aliases at the IPv4 subtree (`::/96`).
    fn alias_ipv4(&mut self) {
        let ipv4_root = self.walk(0, 96);
        for (alias, prefix) in ALIASES {
            let node = self.walk(alias, prefix - 1);
            self.nodes[node][bit_at(alias, prefix - 1)] = Rec::Node(ipv4_root);
        }
    }

    /// The finished file.
    pub fn build(mut self) -> anyhow::Result<Vec<u8>> {
        self.alias_ipv4();
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.values.len());
        for v in &self.values {
            offsets.push(data.len());
            data.extend_from_slice(v);
        }
        let node_count = self.nodes.len();
        let largest = node_count + SEPARATOR.len() + data.len();
        let size = match self.record_size {
            Some(s) => s,
            None if largest < 1 << 24 => RecordSize::Bits24,
            None if largest < 1 << 28 => RecordSize::Bits28,
            None => RecordSize::Bits32,
        };
        if largest >= 1usize << size.bits() {
            bail!("{largest} does not fit a {}-bit record", size.bits());
        }
        let record = |r: Rec| -> u32 {
            let v = match r {
                Rec::Empty => node_count,
                Rec::Node(n) => n,
                Rec::Data(d) => node_count + SEPARATOR.len() + offsets[d],
            };
            // Checked against the record size above.
            v as u32
        };
        let mut out = Vec::with_capacity(node_count * 8 + data.len() + 512);
        for [l, r] in &self.nodes {
            let (l, r) = (record(*l), record(*r));
            match size {
                RecordSize::Bits24 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                RecordSize::Bits28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push(((((l >> 24) & 0x0f) << 4) | ((r >> 24) & 0x0f)) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                RecordSize::Bits32 => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&SEPARATOR);
        out.extend_from_slice(&data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(self.build_epoch)),
            ("database_type", Value::String(self.database_type)),
            (
                "description",
                Value::map([("en", Value::String(self.description))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::str("en")])),
            (
                "node_count",
                Value::U32(u32::try_from(node_count).context("too many nodes")?),
            ),
            ("record_size", Value::U16(size.bits())),
        ]);
        encode(&mut out, &metadata)?;
        Ok(out)
    }

    /// Builds the file and writes it to `path`.
    pub fn write_to(self, path: &Path) -> anyhow::Result<()> {
        let bytes = self.build()?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

/// A `GeoLite2-Country` database mapping each network to a country, e.g.
/// `country_db(&[("127.0.0.2/32", "DE"), ("::1/128", "FR")])`.
pub fn country_db(entries: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut w = MmdbWriter::new("GeoLite2-Country");
    w.insert_countries(entries)?;
    w.build()
}

/// `(network bits, prefix)` of the aliases that lead into the IPv4 subtree.
const ALIASES: [(u128, u8); 2] = [
    (0xffff << 32, 96),  // ::ffff:0:0/96, IPv4-mapped
    (0x2002 << 112, 16), // 2002::/16, 6to4
];

/// Bit `i` of a 128-bit address, counting from the most significant.
fn bit_at(bits: u128, i: u8) -> usize {
    ((bits >> (127 - i)) & 1) as usize
}

fn under(bits: u128, net: u128, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    bits & mask == net
}

/// A network as its 128-bit position in the tree and prefix length (IPv4 under `::/96`).
fn parse_network(s: &str) -> anyhow::Result<(u128, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (
            a,
            Some(p.parse::<u8>().with_context(|| format!("{s}: prefix"))?),
        ),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .with_context(|| format!("{s}: not an address"))?;
    let (bits, prefix) = match addr {
        IpAddr::V4(v4) => {
            let p = prefix.unwrap_or(32);
            if p > 32 {
                bail!("{s}: prefix longer than 32");
            }
            (u128::from(u32::from(v4)), p + 96)
        }
        IpAddr::V6(v6) => {
            let p = prefix.unwrap_or(128);
            if p > 128 {
                bail!("{s}: prefix longer than 128");
            }
            (u128::from(v6), p)
        }
    };
    if !under(bits, bits, prefix) {
        bail!("{s}: host bits are set");
    }
    Ok((bits, prefix))
}

/// Writes a control byte (type and payload size) per the spec's "Data Field Format".
fn control(out: &mut Vec<u8>, ty: u8, size: usize) -> anyhow::Result<()> {
    // The five size bits, then 0 to 3 more bytes holding the size minus the first value that
    // needs them.
    let (low, rest, len) = match size {
        0..29 => (size as u8, 0, 0),
        29..285 => (29, size - 29, 1),
        285..65_821 => (30, size - 285, 2),
        _ if size - 65_821 < 1 << 24 => (31, size - 65_821, 3),
        _ => bail!("value of {size} bytes or entries is too large"),
    };
    if ty <= 7 {
        out.push((ty << 5) | low);
    } else {
        // Extended type: type 0 in the control byte, the type minus 7 in the next byte.
        out.push(low);
        out.push(ty - 7);
    }
    out.extend_from_slice(&rest.to_be_bytes()[size_of::<usize>() - len..]);
    Ok(())
}

/// An unsigned integer: big-endian with leading zero bytes left out.
fn uint(out: &mut Vec<u8>, ty: u8, v: u64) -> anyhow::Result<()> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, ty, 8 - skip)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

fn encode(out: &mut Vec<u8>, v: &Value) -> anyhow::Result<()> {
    match v {
        Value::String(s) => {
            control(out, 2, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            control(out, 3, 8)?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::U16(n) => uint(out, 5, u64::from(*n))?,
        Value::U32(n) => uint(out, 6, u64::from(*n))?,
        Value::U64(n) => uint(out, 9, *n)?,
        // The value is the size field; there is no payload.
        Value::Bool(b) => control(out, 14, usize::from(*b))?,
        Value::Array(items) => {
            control(out, 11, items.len())?;
            for item in items {
                encode(out, item)?;
            }
        }
        Value::Map(pairs) => {
            control(out, 7, pairs.len())?;
            for (k, v) in pairs {
                control(out, 2, k.len())?;
                out.extend_from_slice(k.as_bytes());
                encode(out, v)?;
            }
        }
    }
    Ok(())
}

/// The networks in `tests/fixtures/geo/country-test.mmdb` (see [`country_test_fixture`]).
///
/// `127.0.0.1` is deliberately absent (an unknown country), so a test or demo client picks its
/// country by binding its source address inside `127.0.0.0/8`.
pub const COUNTRY_TEST_ENTRIES: [(&str, &str); 7] = [
    ("127.0.0.2/32", "DE"),
    ("127.0.0.3/32", "US"),
    ("127.0.0.5/32", "FR"),
    ("::1/128", "FR"),
    ("192.0.2.0/24", "DE"),
    ("198.51.100.0/24", "US"),
    ("2001:db8::/32", "DE"),
];

/// The bytes of `tests/fixtures/geo/country-test.mmdb`: [`COUNTRY_TEST_ENTRIES`] plus
/// `127.0.0.4/32` with only a `registered_country` of `GB`, as a `GeoLite2-Country` database.
///
/// The committed file was made by this function; regenerate it with
/// `cargo test -p portcullis-tests --lib -- --ignored regenerate_country_fixture`
/// (the test `country_fixture_is_current` fails when the two disagree).
pub fn country_test_fixture() -> anyhow::Result<Vec<u8>> {
    let mut w = MmdbWriter::new("GeoLite2-Country");
    w.insert_countries(&COUNTRY_TEST_ENTRIES)?;
    w.insert("127.0.0.4/32", &Value::registered_country("GB"))?;
    w.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{PathElement, Reader};

    // Through `..`, so it also resolves when the proxy's tests include this file.
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/geo/country-test.mmdb"
    );

    fn iso<S: AsRef<[u8]>>(r: &Reader<S>, ip: &str, key: &str) -> Option<String> {
        let res = r.lookup(ip.parse().unwrap()).unwrap();
        res.decode_path::<String>(&[PathElement::Key(key), PathElement::Key("iso_code")])
            .unwrap()
    }

    #[test]
    fn the_maxminddb_crate_reads_every_record_size() {
        for size in [RecordSize::Bits24, RecordSize::Bits28, RecordSize::Bits32] {
            let mut w = MmdbWriter::new("GeoIP2-Country").record_size(size);
            w.insert_countries(&[
                ("10.0.0.0/8", "US"),
                ("10.1.0.0/16", "DE"),
                ("127.0.0.2/32", "DE"),
                ("::1", "FR"),
                ("2001:db8::/32", "NL"),
            ])
            .unwrap();
            // Wider after narrower: fills around 10.1.0.0/16, keeps it.
            w.insert("0.0.0.0/1", &Value::country("JP")).unwrap();
            let r = Reader::from_source(w.build().unwrap()).unwrap();
            r.verify().unwrap();
            let m = r.metadata();
            assert_eq!(m.record_size, size.bits());
            assert_eq!(m.ip_version, 6);
            assert_eq!(m.database_type, "GeoIP2-Country");
            assert_eq!(m.build_epoch, BUILD_EPOCH);
            assert_eq!(iso(&r, "10.2.3.4", "country").as_deref(), Some("US"));
            assert_eq!(iso(&r, "10.1.255.1", "country").as_deref(), Some("DE"));
            assert_eq!(iso(&r, "11.0.0.1", "country").as_deref(), Some("JP"));
            assert_eq!(iso(&r, "127.0.0.2", "country").as_deref(), Some("DE"));
            assert_eq!(iso(&r, "127.0.0.1", "country").as_deref(), Some("JP"));
            assert_eq!(iso(&r, "::1", "country").as_deref(), Some("FR"));
            assert_eq!(iso(&r, "2001:db8:5::1", "country").as_deref(), Some("NL"));
            // The IPv4 aliases lead to the same records.
            assert_eq!(iso(&r, "::ffff:10.1.0.1", "country").as_deref(), Some("DE"));
            assert_eq!(
                iso(&r, "2002:0a01:0001::", "country").as_deref(),
                Some("DE")
            );
            // Misses.
            assert!(!r.lookup("200.0.0.1".parse().unwrap()).unwrap().has_data());
            assert!(!r.lookup("2001:db9::1".parse().unwrap()).unwrap().has_data());
            // The whole record decodes as the crate's own GeoIP2 type.
            let c: maxminddb::geoip2::Country = r
                .lookup("10.1.0.1".parse().unwrap())
                .unwrap()
                .decode()
                .unwrap()
                .unwrap();
            assert_eq!(c.country.iso_code, Some("DE"));
            assert_eq!(c.country.names.english, Some("DE"));
            assert_eq!(c.registered_country.iso_code, Some("DE"));
        }
    }

    #[test]
    fn values_of_every_type_round_trip() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct All {
            s: String,
            long: String,
            d: f64,
            a: u16,
            b: u32,
            c: u64,
            t: bool,
            f: bool,
            list: Vec<u32>,
        }
        let long = "x".repeat(70_000);
        let mut w = MmdbWriter::new("Test");
        let v = Value::map([
            ("s", Value::str("é")),
            ("long", Value::String(long.clone())),
            ("d", Value::Double(1.5)),
            ("a", Value::U16(0)),
            ("b", Value::U32(300)),
            ("c", Value::U64(u64::MAX)),
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("list", Value::Array((0..40).map(Value::U32).collect())),
        ]);
        w.insert("192.0.2.0/24", &v).unwrap();
        let r = Reader::from_source(w.build().unwrap()).unwrap();
        r.verify().unwrap();
        let got: All = r
            .lookup("192.0.2.9".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            All {
                s: "é".to_owned(),
                long,
                d: 1.5,
                a: 0,
                b: 300,
                c: u64::MAX,
                t: true,
                f: false,
                list: (0..40).collect(),
            }
        );
    }

    #[test]
    fn bad_networks_are_refused() {
        let mut w = MmdbWriter::new("Test");
        let v = Value::country("DE");
        assert!(w.insert("10.0.0.1/8", &v).is_err());
        assert!(w.insert("10.0.0.0/33", &v).is_err());
        assert!(w.insert("::ffff:10.0.0.0/104", &v).is_err());
        assert!(w.insert("2002::/20", &v).is_err());
        assert!(w.insert("example.com", &v).is_err());
    }

    #[test]
    fn identical_values_are_stored_once() {
        let one = country_db(&[("10.0.0.0/8", "DE")]).unwrap();
        let two = country_db(&[("10.0.0.0/8", "DE"), ("11.0.0.0/8", "DE")]).unwrap();
        let data = |b: &[u8]| {
            let r = Reader::from_source(b.to_vec()).unwrap();
            let nodes = r.metadata().node_count as usize;
            b.len() - nodes * 6
        };
        assert_eq!(data(&one), data(&two));
    }

    #[test]
    fn country_fixture_is_current() {
        let committed = std::fs::read(FIXTURE).unwrap();
        assert!(
            committed == country_test_fixture().unwrap(),
            "{FIXTURE} is stale: regenerate it (see country_test_fixture)"
        );
        let r = Reader::from_source(committed).unwrap();
        r.verify().unwrap();
        assert_eq!(iso(&r, "127.0.0.2", "country").as_deref(), Some("DE"));
        assert_eq!(iso(&r, "127.0.0.4", "country"), None);
        assert_eq!(
            iso(&r, "127.0.0.4", "registered_country").as_deref(),
            Some("GB")
        );
    }

    #[test]
    #[ignore = "writes the fixture; run by hand after changing COUNTRY_TEST_ENTRIES"]
    fn regenerate_country_fixture() {
        std::fs::write(FIXTURE, country_test_fixture().unwrap()).unwrap();
    }
}
