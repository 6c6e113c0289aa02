//! Crafting hostile captures for the tests: a classic pcap writer and TCP
//! conversations (handshake, segments in either direction with correct
//! sequence numbers, or deliberately wrong ones).
#![allow(dead_code)]

use std::net::Ipv4Addr;

/// A classic pcap file (Ethernet link type) being written in memory.
pub struct Pcap {
    pub buf: Vec<u8>,
    pub ts_us: u64,
    pub frames: u64,
}

impl Default for Pcap {
    fn default() -> Self {
        Pcap::new()
    }
}

impl Pcap {
    pub fn new() -> Pcap {
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        Pcap { buf, ts_us: 1_800_000_000_000_000, frames: 0 }
    }

    /// One Ethernet/IPv4/TCP frame.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(&mut self, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let mut f = Vec::with_capacity(54 + payload.len());
        f.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        f.extend_from_slice(&[0x50, flags]);
        f.extend_from_slice(&65535u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        self.raw(&f);
    }

    /// Any frame bytes.
    pub fn raw(&mut self, f: &[u8]) {
        self.ts_us += 10;
        self.buf.extend_from_slice(&((self.ts_us / 1_000_000) as u32).to_le_bytes());
        self.buf.extend_from_slice(&((self.ts_us % 1_000_000) as u32).to_le_bytes());
        self.buf.extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(f);
        self.frames += 1;
    }

    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, &self.buf).unwrap();
    }
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;

/// One TCP connection between a client and a server.
pub struct Conv {
    pub client: (Ipv4Addr, u16),
    pub server: (Ipv4Addr, u16),
    pub cseq: u32,
    pub sseq: u32,
}

impl Conv {
    /// A connection, with its three-way handshake written.
    pub fn open(p: &mut Pcap, client: (Ipv4Addr, u16), server: (Ipv4Addr, u16)) -> Conv {
        let mut c = Conv { client, server, cseq: 1000, sseq: 5000 };
        p.tcp(client.0, client.1, server.0, server.1, c.cseq, 0, SYN, &[]);
        p.tcp(server.0, server.1, client.0, client.1, c.sseq, c.cseq + 1, SYN | ACK, &[]);
        c.cseq += 1;
        c.sseq += 1;
        p.tcp(client.0, client.1, server.0, server.1, c.cseq, c.sseq, ACK, &[]);
        c
    }

    /// Client → server bytes, in segments of at most 1460.
    pub fn to_server(&mut self, p: &mut Pcap, data: &[u8]) {
        for chunk in data.chunks(1460) {
            p.tcp(self.client.0, self.client.1, self.server.0, self.server.1, self.cseq, self.sseq, ACK | PSH, chunk);
            self.cseq = self.cseq.wrapping_add(chunk.len() as u32);
        }
    }

    /// Server → client bytes, in segments of at most 1460.
    pub fn to_client(&mut self, p: &mut Pcap, data: &[u8]) {
        for chunk in data.chunks(1460) {
            p.tcp(self.server.0, self.server.1, self.client.0, self.client.1, self.sseq, self.cseq, ACK | PSH, chunk);
            self.sseq = self.sseq.wrapping_add(chunk.len() as u32);
        }
    }

    /// A client segment at an explicit sequence number (the conversation's own is unchanged).
    pub fn client_at(&self, p: &mut Pcap, seq: u32, data: &[u8]) {
        p.tcp(self.client.0, self.client.1, self.server.0, self.server.1, seq, self.sseq, ACK | PSH, data);
    }

    /// FIN from both sides.
    pub fn close(&mut self, p: &mut Pcap) {
        p.tcp(self.client.0, self.client.1, self.server.0, self.server.1, self.cseq, self.sseq, FIN | ACK, &[]);
        p.tcp(self.server.0, self.server.1, self.client.0, self.client.1, self.sseq, self.cseq + 1, FIN | ACK, &[]);
    }
}

/// A client address for index `i` (distinct for i < 2^24).
pub fn client_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff))
}

pub fn server_ip() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 80)
}
