//! apitap's own capture-file reader against libpcap's: on every capture the
//! project ships and every capture of `../shared` (corpus and generator), both
//! deliver the same packets — link type, time (µs) and bytes — in the same
//! order; where libpcap stops on damage, apitap's reader delivers at least
//! the same packets first and says why it stopped too.

mod common;

use std::path::{Path, PathBuf};

use apitap::capture::{replay_file, replay_file_libpcap};
use apitap::decode::LinkType;

type Pkt = (i32, u64, Vec<u8>);

fn read_native(p: &Path) -> (Vec<Pkt>, Option<String>) {
    let mut v = Vec::new();
    let rep = replay_file(p, &mut |l: LinkType, ts, f: &[u8]| v.push((l.dlt(), ts, f.to_vec())), |_| {}).expect("native reader opens it");
    (v, rep.stopped)
}

fn read_libpcap(p: &Path) -> Option<(Vec<Pkt>, Option<String>)> {
    let mut v = Vec::new();
    let rep = replay_file_libpcap(p, |l, ts, f| v.push((l.dlt(), ts, f.to_vec()))).ok()?;
    Some((v, rep.stopped))
}

fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"));
    v.sort();
    v
}

/// Compares the readers on each file; returns how many packets agreed.
fn compare(files: &[PathBuf]) -> u64 {
    let mut agreed = 0u64;
    let mut failures = Vec::new();
    for f in files {
        let Some((lib, lib_stop)) = read_libpcap(f) else {
            eprintln!("{}: libpcap cannot open it; not compared", f.display());
            continue;
        };
        let (own, own_stop) = read_native(f);
        if lib_stop.is_none() {
            if own != lib || own_stop.is_some() {
                let first = own.iter().zip(&lib).position(|(a, b)| a != b);
                failures.push(format!(
                    "{}: libpcap {} packets, apitap {} (stopped: {own_stop:?}); first difference at {first:?}",
                    f.display(),
                    lib.len(),
                    own.len()
                ));
                continue;
            }
        } else if own.get(..lib.len()) != Some(&lib[..]) || own_stop.is_none() {
            failures.push(format!("{}: libpcap stopped after {} ({lib_stop:?}); apitap read {} and stopped: {own_stop:?}", f.display(), lib.len(), own.len()));
            continue;
        }
        agreed += lib.len() as u64;
    }
    assert!(failures.is_empty(), "readers disagree:\n{}", failures.join("\n"));
    agreed
}

#[test]
fn own_reader_matches_libpcap_on_the_bundled_captures() {
    let files = captures_in(&common::root().join("fixtures"));
    assert!(!files.is_empty());
    let n = compare(&files);
    assert!(n > 1000, "{n} packets compared");
}

#[test]
fn own_reader_matches_libpcap_on_the_shared_corpus_and_generator_captures() {
    let Some(shared) = common::shared() else { return };
    let mut files = captures_in(&shared.join("corpus").join("dev"));
    assert!(files.len() >= 80, "corpus: {} captures", files.len());
    files.extend(captures_in(&shared.join("trafficgen")));
    let n = compare(&files);
    eprintln!("{} files, {n} packets identical", files.len());
}

#[test]
fn own_reader_matches_libpcap_on_a_truncated_capture() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(common::fixture("sample.pcap")).unwrap();
    for cut in [full.len() / 3, full.len() / 2 + 7, full.len() - 1] {
        let p = dir.path().join(format!("cut{cut}.pcap"));
        std::fs::write(&p, &full[..cut]).unwrap();
        compare(&[p]);
    }
}

/// A file far larger than the part of a mapped file kept resident (the pages
/// behind the reader are let go of as it goes): mapped, fed by read(2) and
/// libpcap, the same packets, each with its own content.
#[test]
fn a_mapped_file_larger_than_its_resident_window_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("large.pcap");
    // pcap, little endian, µs, Ethernet; 48,000 records of 1,000 to 1,399 bytes (about 57 MB)
    let mut f = Vec::with_capacity(60 << 20);
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..48_000u32 {
        let len = 1_000 + i % 400;
        f.extend_from_slice(&(1_700_000_000 + i / 1000).to_le_bytes());
        f.extend_from_slice(&(i % 1000).to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend((0..len).map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8));
    }
    std::fs::write(&p, &f).unwrap();
    let (mapped, stopped) = read_native(&p);
    assert_eq!(stopped, None);
    assert_eq!(mapped.len(), 48_000);
    let mut streamed = Vec::new();
    apitap::capture::replay_file_read(&p, &mut |l: LinkType, ts, fr: &[u8]| streamed.push((l.dlt(), ts, fr.to_vec())), |_| {}).unwrap();
    assert!(mapped == streamed, "the mapped and the streamed reads differ");
    let (pcap, _) = read_libpcap(&p).unwrap();
    assert!(mapped == pcap, "the mapped read and libpcap differ");
    // every record's own bytes, not a neighbour's
    for (i, (_, ts, data)) in mapped.iter().enumerate().step_by(997) {
        let i = i as u32;
        assert_eq!(*ts, u64::from(1_700_000_000 + i / 1000) * 1_000_000 + u64::from(i % 1000));
        assert_eq!(data.len() as u32, 1_000 + i % 400);
        assert!(data.iter().enumerate().all(|(j, b)| *b == (i.wrapping_mul(31).wrapping_add(j as u32) % 251) as u8));
    }
}
