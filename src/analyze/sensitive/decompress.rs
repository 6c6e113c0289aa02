//! Content-Encoding decoding of body samples, with a bomb guard.
//!
//! A sample is the *first* bytes of a body, so a compressed stream is often
//! cut: decoders return what they produced before the input ran out. Every
//! stage writes into a buffer bounded by a cap; reaching it stops the stage
//! (an inflated sample never grows past the cap, whatever the ratio).
//!
//! Formats:
//! - gzip (RFC 1952): `1f 8b 08 FLG MTIME(4) XFL OS`, then FEXTRA
//!   (`XLEN(2 LE)` + data), FNAME and FCOMMENT (zero-terminated), FHCRC (2),
//!   a raw DEFLATE stream, `CRC32(4) ISIZE(4)`; members may follow each other.
//! - deflate (RFC 9110 §8.4.1.2): a zlib stream (RFC 1950, `CMF FLG` with
//!   `(CMF*256+FLG) % 31 == 0`), or — as some servers send — raw DEFLATE.
//! - br (RFC 7932), decoded with a standard (not large) window: at most 16 MiB
//!   of ring buffer.

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Decompress, FlushDecompress, Status};

/// Content codings stacked in one header beyond which a body is not decoded.
pub(crate) const MAX_CODING_LAYERS: usize = 3;
/// gzip members decoded one after the other at most.
const MAX_GZIP_MEMBERS: usize = 16;
/// Output produced per decoder call.
const CHUNK: usize = 16 * 1024;

/// A content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

/// How a decoding stage ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The stream ended properly.
    Complete,
    /// The input ran out first (a cut sample): the output is what it held.
    Truncated,
    /// The output reached the cap; the rest was not decoded.
    Capped,
    /// The data is not valid for the coding; the output is what came before.
    Corrupt,
}

/// Why a body's codings cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodingError {
    #[error("unsupported content coding {0:?}")]
    Unsupported(String),
    #[error("more than {MAX_CODING_LAYERS} content codings")]
    TooManyLayers,
}

/// Parses a `Content-Encoding` value into the codings to undo, in the order
/// they must be undone (the last applied first). `identity` is skipped.
pub(crate) fn parse_codings(value: &[u8]) -> Result<Vec<Coding>, CodingError> {
    let mut out = Vec::new();
    for tok in value.split(|&b| b == b',') {
        let tok = super::validate::trim(tok);
        if tok.is_empty() || tok.eq_ignore_ascii_case(b"identity") {
            continue;
        }
        let c = if tok.eq_ignore_ascii_case(b"gzip") || tok.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else if tok.eq_ignore_ascii_case(b"deflate") {
            Coding::Deflate
        } else if tok.eq_ignore_ascii_case(b"br") {
            Coding::Brotli
        } else {
            return Err(CodingError::Unsupported(String::from_utf8_lossy(tok.get(..tok.len().min(32)).unwrap_or(&[])).into_owned()));
        };
        if out.len() == MAX_CODING_LAYERS {
            return Err(CodingError::TooManyLayers);
        }
        out.push(c);
    }
    out.reverse();
    Ok(out)
}

/// Decodes `input` with one coding, producing at most `cap` bytes.
pub(crate) fn decode(coding: Coding, input: &[u8], cap: usize) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let end = match coding {
        Coding::Gzip => gunzip(input, cap, &mut out),
        Coding::Deflate => {
            if looks_like_zlib(input) {
                inflate(input, true, cap, &mut out).0
            } else {
                inflate(input, false, cap, &mut out).0
            }
        }
        Coding::Brotli => unbrotli(input, cap, &mut out),
    };
    (out, end)
}

fn looks_like_zlib(b: &[u8]) -> bool {
    match (b.first(), b.get(1)) {
        (Some(&cmf), Some(&flg)) => cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0,
        _ => false,
    }
}

std::thread_local! {
    /// One inflater per kind (raw DEFLATE, zlib) and thread, reset before each
    /// use: a fresh one costs a 40 KiB allocation and clearing, per body.
    static INFLATERS: std::cell::RefCell<[Option<Decompress>; 2]> = const { std::cell::RefCell::new([None, None]) };
}

/// Inflates a zlib or raw DEFLATE stream; returns how it ended and the input consumed.
fn inflate(input: &[u8], zlib: bool, cap: usize, out: &mut Vec<u8>) -> (End, usize) {
    INFLATERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slots) => {
            let [raw, z] = &mut *slots;
            let slot = if zlib { z } else { raw };
            let d = slot.get_or_insert_with(|| Decompress::new(zlib));
            d.reset(zlib);
            inflate_with(d, input, cap, out)
        }
        // (not reentrant; a nested call gets its own)
        Err(_) => inflate_with(&mut Decompress::new(zlib), input, cap, out),
    })
}

fn inflate_with(d: &mut Decompress, input: &[u8], cap: usize, out: &mut Vec<u8>) -> (End, usize) {
    let mut whole = [0u8; CHUNK];
    let buf = whole.get_mut(..CHUNK.min(cap.max(1))).unwrap_or_default();
    loop {
        let room = cap.saturating_sub(out.len()).min(buf.len());
        let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        if room == 0 {
            return (End::Capped, consumed);
        }
        let rest = input.get(consumed..).unwrap_or(&[]);
        let before_out = d.total_out();
        let before_in = d.total_in();
        let Some(window) = buf.get_mut(..room) else {
            return (End::Corrupt, consumed);
        };
        let status = d.decompress(rest, window, FlushDecompress::None);
        let produced = usize::try_from(d.total_out() - before_out).unwrap_or(0);
        out.extend_from_slice(window.get(..produced).unwrap_or(&[]));
        let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        match status {
            Ok(Status::StreamEnd) => return (End::Complete, consumed),
            Ok(Status::Ok) | Ok(Status::BufError) => {
                if d.total_in() == before_in && produced == 0 {
                    // no progress: the input is exhausted mid-stream
                    return (if out.len() >= cap { End::Capped } else { End::Truncated }, consumed);
                }
            }
            Err(_) => return (End::Corrupt, consumed),
        }
    }
}

/// Length of a gzip member header, `Ok(None)` when the input ends inside it.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, ()> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    const FIXED: usize = 10;
    let (Some(&id1), Some(&id2), Some(&cm), Some(&flg)) = (b.first(), b.get(1), b.get(2), b.get(3)) else {
        return if b.is_empty() || b.first() == Some(&0x1f) { Ok(None) } else { Err(()) };
    };
    if id1 != 0x1f || id2 != 0x8b || cm != 8 || flg & RESERVED != 0 {
        return Err(());
    }
    let mut pos = FIXED;
    if flg & FEXTRA != 0 {
        let (Some(&lo), Some(&hi)) = (b.get(pos), b.get(pos + 1)) else { return Ok(None) };
        pos += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flg & flag != 0 {
            match b.get(pos..).and_then(|s| s.iter().position(|&x| x == 0)) {
                Some(z) => pos += z + 1,
                None => return Ok(None),
            }
        }
    }
    if flg & FHCRC != 0 {
        pos += 2;
    }
    Ok(if pos <= b.len() { Some(pos) } else { None })
}

fn gunzip(input: &[u8], cap: usize, out: &mut Vec<u8>) -> End {
    let mut pos = 0usize;
    for member in 0..MAX_GZIP_MEMBERS {
        let rest = input.get(pos..).unwrap_or(&[]);
        if member > 0 && rest.is_empty() {
            return End::Complete;
        }
        let hdr = match gzip_header_len(rest) {
            Ok(Some(n)) => n,
            Ok(None) => return End::Truncated,
            // trailing garbage after a complete member is ignored, as gzip does
            Err(()) => return if member > 0 { End::Complete } else { End::Corrupt },
        };
        let (end, used) = inflate(rest.get(hdr..).unwrap_or(&[]), false, cap, out);
        if end != End::Complete {
            return end;
        }
        // CRC32 and ISIZE
        pos = pos.saturating_add(hdr).saturating_add(used).saturating_add(8);
        if pos > input.len() {
            return End::Truncated;
        }
    }
    End::Complete
}

fn unbrotli(input: &[u8], cap: usize, out: &mut Vec<u8>) -> End {
    let mut state = BrotliState::new_strict(StandardAlloc::default(), StandardAlloc::default(), StandardAlloc::default());
    let mut buf = vec![0u8; CHUNK.min(cap.max(1))];
    let mut avail_in = input.len();
    let mut in_off = 0usize;
    let mut total = 0usize;
    loop {
        let room = cap.saturating_sub(out.len()).min(buf.len());
        if room == 0 {
            return End::Capped;
        }
        let Some(window) = buf.get_mut(..room) else {
            return End::Corrupt;
        };
        let mut avail_out = room;
        let mut out_off = 0usize;
        let r = BrotliDecompressStream(&mut avail_in, &mut in_off, input, &mut avail_out, &mut out_off, window, &mut total, &mut state);
        out.extend_from_slice(window.get(..out_off).unwrap_or(&[]));
        match r {
            BrotliResult::ResultSuccess => return End::Complete,
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::NeedsMoreInput => return End::Truncated,
            BrotliResult::ResultFailure => return End::Corrupt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }

    #[test]
    fn codings_parse() {
        assert_eq!(parse_codings(b"gzip"), Ok(vec![Coding::Gzip]));
        assert_eq!(parse_codings(b"x-gzip"), Ok(vec![Coding::Gzip]));
        assert_eq!(parse_codings(b"deflate, br"), Ok(vec![Coding::Brotli, Coding::Deflate]));
        assert_eq!(parse_codings(b"identity"), Ok(vec![]));
        assert_eq!(parse_codings(b""), Ok(vec![]));
        assert!(matches!(parse_codings(b"zstd"), Err(CodingError::Unsupported(_))));
        assert_eq!(parse_codings(b"gzip,gzip,gzip,gzip"), Err(CodingError::TooManyLayers));
    }

    #[test]
    fn gzip_header_variants() {
        // FNAME + FCOMMENT + FEXTRA + FHCRC
        let mut h = vec![0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 0, 3];
        h.extend_from_slice(&[2, 0, b'a', b'b']);
        h.extend_from_slice(b"name\0comment\0");
        h.extend_from_slice(&[0, 0]);
        assert_eq!(gzip_header_len(&h), Ok(Some(h.len())));
        assert_eq!(gzip_header_len(&h[..12]), Ok(None));
        assert_eq!(gzip_header_len(&[0x1f]), Ok(None));
        assert_eq!(gzip_header_len(b"PK\x03\x04"), Err(()));
        assert_eq!(gzip_header_len(&[0x1f, 0x8b, 8, 0xe0]), Err(()));
    }

    #[test]
    fn multi_member_gzip() {
        let mut two = gz(b"hello ");
        two.extend_from_slice(&gz(b"world"));
        let (out, end) = decode(Coding::Gzip, &two, 1 << 20);
        assert_eq!(out, b"hello world");
        assert_eq!(end, End::Complete);
    }

    #[test]
    fn every_truncation_of_gzip_is_safe() {
        let data: Vec<u8> = (0..4000u32).flat_map(|i| format!("{{\"n\":{i}}},").into_bytes()).collect();
        let z = gz(&data);
        for cut in 0..z.len() {
            let (out, end) = decode(Coding::Gzip, &z[..cut], 1 << 20);
            assert!(data.starts_with(&out), "cut {cut}");
            assert_ne!(end, End::Complete, "cut {cut}");
        }
        let (out, end) = decode(Coding::Gzip, &z, 1 << 20);
        assert_eq!((out.len(), end), (data.len(), End::Complete));
    }

    #[test]
    fn cap_bounds_output() {
        let z = gz(&vec![b'a'; 1 << 20]);
        let (out, end) = decode(Coding::Gzip, &z, 1000);
        assert_eq!((out.len(), end), (1000, End::Capped));
        let (out, end) = decode(Coding::Gzip, &z, 0);
        assert_eq!((out.len(), end), (0, End::Capped));
    }
}
