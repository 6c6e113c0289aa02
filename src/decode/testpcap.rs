//! A tiny capture-file reader for the tests: classic pcap (either byte
//! order, micro- or nanosecond timestamps) and the enhanced/simple packet
//! blocks of pcapng. No dependency on libpcap.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

/// One record: link type, timestamp in microseconds, frame bytes.
pub(super) struct Record {
    pub link: i32,
    pub ts_us: u64,
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], off: usize, le: bool) -> Option<u16> {
    let a: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    })
}

fn u32_at(b: &[u8], off: usize, le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

/// Reads every record of a classic pcap or pcapng file held in `b`.
pub(super) fn read(b: &[u8]) -> Result<Vec<Record>, String> {
    let magic = b.get(..4).ok_or("file too short")?;
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => classic(b, true, 1),
        [0xa1, 0xb2, 0xc3, 0xd4] => classic(b, false, 1),
        [0x4d, 0x3c, 0xb2, 0xa1] => classic(b, true, 1000),
        [0xa1, 0xb2, 0x3c, 0x4d] => classic(b, false, 1000),
        [0x0a, 0x0d, 0x0d, 0x0a] => pcapng(b),
        _ => Err(format!("unknown magic {magic:02x?}")),
    }
}

fn classic(b: &[u8], le: bool, ts_div: u64) -> Result<Vec<Record>, String> {
    let link = u32_at(b, 20, le).ok_or("short header")? as i32 & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let sec = u64::from(u32_at(b, off, le).unwrap());
        let frac = u64::from(u32_at(b, off + 4, le).unwrap());
        let incl = u32_at(b, off + 8, le).unwrap() as usize;
        off += 16;
        let data = b.get(off..off + incl).ok_or("record past end of file")?;
        out.push(Record {
            link,
            ts_us: sec * 1_000_000 + frac / ts_div,
            data: data.to_vec(),
        });
        off += incl;
    }
    Ok(out)
}

fn pcapng(b: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    // (link type, timestamp units per second) per interface of the section.
    let mut ifaces: Vec<(i32, u64)> = Vec::new();
    let mut le = true;
    let mut off = 0;
    while off + 12 <= b.len() {
        let raw_type = u32_at(b, off, true).unwrap();
        if raw_type == 0x0a0d_0d0a {
            le = u32_at(b, off + 8, true).unwrap() == 0x1a2b_3c4d;
            ifaces.clear();
        }
        let typ = u32_at(b, off, le).unwrap();
        let len = u32_at(b, off + 4, le).unwrap() as usize;
        if len < 12 || off + len > b.len() {
            return Err(format!("bad block length {len} at {off}"));
        }
        let body = &b[off + 8..off + len - 4];
        match typ {
            1 => {
                let link = i32::from(u16_at(body, 0, le).unwrap());
                let mut per_sec = 1_000_000;
                // Options: code (2), length (2), value padded to 4.
                let mut o = 8;
                while o + 4 <= body.len() {
                    let code = u16_at(body, o, le).unwrap();
                    let olen = usize::from(u16_at(body, o + 2, le).unwrap());
                    if code == 0 {
                        break;
                    }
                    if code == 9 && olen == 1 {
                        let r = body[o + 4];
                        per_sec = if r & 0x80 != 0 {
                            1u64 << (r & 0x7f)
                        } else {
                            10u64.pow(u32::from(r))
                        };
                    }
                    o += 4 + olen.div_ceil(4) * 4;
                }
                ifaces.push((link, per_sec));
            }
            6 => {
                let iface = u32_at(body, 0, le).unwrap() as usize;
                let ts = (u64::from(u32_at(body, 4, le).unwrap()) << 32)
                    | u64::from(u32_at(body, 8, le).unwrap());
                let cap = u32_at(body, 12, le).unwrap() as usize;
                let (link, per_sec) = *ifaces.get(iface).ok_or("packet on unknown interface")?;
                let data = body.get(20..20 + cap).ok_or("packet past end of block")?;
                let ts_us = (u128::from(ts) * 1_000_000 / u128::from(per_sec)) as u64;
                out.push(Record {
                    link,
                    ts_us,
                    data: data.to_vec(),
                });
            }
            3 => {
                let (link, _) = *ifaces.first().ok_or("packet on unknown interface")?;
                let orig = u32_at(body, 0, le).unwrap() as usize;
                let data = &body[4..body.len().min(4 + orig)];
                out.push(Record {
                    link,
                    ts_us: 0,
                    data: data.to_vec(),
                });
            }
            _ => {}
        }
        off += len;
    }
    Ok(out)
}
