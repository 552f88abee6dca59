//! Test-only writers that build pcap and pcapng byte buffers, so reader tests can state
//! exactly what each frame must read back as. Must not: be used outside tests.

/// Builds a classic pcap file.
pub(crate) struct PcapWriter {
    pub(crate) buf: Vec<u8>,
    be: bool,
}

impl PcapWriter {
    /// File header with the given fractional unit, byte order, snap length and raw link-type
    /// field (upper bits may carry FCS flags).
    pub(crate) fn new(nanos: bool, be: bool, snaplen: u32, linktype_field: u32) -> PcapWriter {
        let mut w = PcapWriter {
            buf: Vec::new(),
            be,
        };
        let magic: u32 = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
        w.u32(magic);
        w.u16(2);
        w.u16(4);
        w.u32(0); // thiszone
        w.u32(0); // sigfigs
        w.u32(snaplen);
        w.u32(linktype_field);
        w
    }

    pub(crate) fn record(&mut self, secs: u32, frac: u32, orig_len: u32, data: &[u8]) -> &mut Self {
        self.record_raw(secs, frac, data.len() as u32, orig_len, data)
    }

    /// A record whose caplen field may lie about the data that follows.
    pub(crate) fn record_raw(
        &mut self,
        secs: u32,
        frac: u32,
        caplen: u32,
        orig_len: u32,
        data: &[u8],
    ) -> &mut Self {
        self.u32(secs);
        self.u32(frac);
        self.u32(caplen);
        self.u32(orig_len);
        self.buf.extend_from_slice(data);
        self
    }

    fn u32(&mut self, v: u32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    fn u16(&mut self, v: u16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }
}

/// Builds a pcapng file block by block; each section picks its own byte order.
#[derive(Default)]
pub(crate) struct NgWriter {
    pub(crate) buf: Vec<u8>,
    be: bool,
}

impl NgWriter {
    pub(crate) fn new() -> NgWriter {
        NgWriter::default()
    }

    /// Starts a section in the given byte order.
    pub(crate) fn shb(&mut self, be: bool) -> &mut Self {
        self.be = be;
        let mut body = Vec::new();
        self.put32(&mut body, 0x1A2B_3C4D);
        self.put16(&mut body, 1);
        self.put16(&mut body, 0);
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        self.opt(&mut body, 3, b"test writer"); // shb_userappl, skipped by the reader
        self.end_opts(&mut body);
        self.block(0x0A0D_0D0A, &body)
    }

    pub(crate) fn idb(
        &mut self,
        linktype: u16,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> &mut Self {
        let mut body = Vec::new();
        self.put16(&mut body, linktype);
        self.put16(&mut body, 0);
        self.put32(&mut body, snaplen);
        self.opt(&mut body, 2, b"eth0"); // if_name
        if let Some(r) = tsresol {
            self.opt(&mut body, 9, &[r]);
        }
        if let Some(o) = tsoffset {
            let b = if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            };
            self.opt(&mut body, 14, &b);
        }
        if tsresol.is_some() || tsoffset.is_some() {
            self.end_opts(&mut body);
        }
        self.block(1, &body)
    }

    pub(crate) fn epb(&mut self, iface: u32, units: u64, orig_len: u32, data: &[u8]) -> &mut Self {
        self.epb_raw(iface, units, data.len() as u32, orig_len, data)
    }

    pub(crate) fn epb_raw(
        &mut self,
        iface: u32,
        units: u64,
        caplen: u32,
        orig_len: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut body = Vec::new();
        self.put32(&mut body, iface);
        self.put32(&mut body, (units >> 32) as u32);
        self.put32(&mut body, units as u32);
        self.put32(&mut body, caplen);
        self.put32(&mut body, orig_len);
        pad_into(&mut body, data);
        self.opt(&mut body, 1, b"a comment"); // opt_comment
        self.end_opts(&mut body);
        self.block(6, &body)
    }

    /// Obsolete Packet Block (type 2).
    pub(crate) fn pb(&mut self, iface: u16, units: u64, orig_len: u32, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        self.put16(&mut body, iface);
        self.put16(&mut body, 0); // drops
        self.put32(&mut body, (units >> 32) as u32);
        self.put32(&mut body, units as u32);
        self.put32(&mut body, data.len() as u32);
        self.put32(&mut body, orig_len);
        pad_into(&mut body, data);
        self.block(2, &body)
    }

    pub(crate) fn spb(&mut self, orig_len: u32, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        self.put32(&mut body, orig_len);
        pad_into(&mut body, data);
        self.block(3, &body)
    }

    pub(crate) fn nrb(&mut self) -> &mut Self {
        let mut body = Vec::new();
        // nrb_record_ipv4 192.0.2.1 "host"
        self.put16(&mut body, 1);
        self.put16(&mut body, 9);
        pad_into(&mut body, &[192, 0, 2, 1, b'h', b'o', b's', b't', 0]);
        self.put16(&mut body, 0);
        self.put16(&mut body, 0);
        self.block(4, &body)
    }

    pub(crate) fn isb(&mut self, iface: u32) -> &mut Self {
        let mut body = Vec::new();
        self.put32(&mut body, iface);
        self.put32(&mut body, 0);
        self.put32(&mut body, 0);
        self.block(5, &body)
    }

    pub(crate) fn dsb(&mut self) -> &mut Self {
        let mut body = Vec::new();
        self.put32(&mut body, 0x544c_534b); // TLS key log
        self.put32(&mut body, 5);
        pad_into(&mut body, b"keys\n");
        self.block(0x0A, &body)
    }

    pub(crate) fn custom(&mut self) -> &mut Self {
        let mut body = Vec::new();
        self.put32(&mut body, 32473); // private enterprise number for examples
        pad_into(&mut body, b"opaque");
        self.block(0x0BAD, &body)
    }

    /// Any block with a raw body (padded to 4 bytes).
    pub(crate) fn block(&mut self, btype: u32, body: &[u8]) -> &mut Self {
        let padded = body.len().next_multiple_of(4);
        let len = (12 + padded) as u32;
        let mut out = Vec::new();
        self.put32(&mut out, btype);
        self.put32(&mut out, len);
        pad_into(&mut out, body);
        self.put32(&mut out, len);
        self.buf.extend_from_slice(&out);
        self
    }

    fn opt(&self, body: &mut Vec<u8>, code: u16, val: &[u8]) {
        self.put16(body, code);
        self.put16(body, val.len() as u16);
        pad_into(body, val);
    }

    fn end_opts(&self, body: &mut Vec<u8>) {
        self.put16(body, 0);
        self.put16(body, 0);
    }

    fn put32(&self, out: &mut Vec<u8>, v: u32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        out.extend_from_slice(&b);
    }

    fn put16(&self, out: &mut Vec<u8>, v: u16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        out.extend_from_slice(&b);
    }
}

fn pad_into(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len() + (data.len().next_multiple_of(4) - data.len()), 0);
}

/// A reader that hands out one byte per call, to exercise every refill path.
pub(crate) struct OneByte(pub(crate) std::io::Cursor<Vec<u8>>);

impl std::io::Read for OneByte {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match out.first_mut() {
            Some(b) => self.0.read(std::slice::from_mut(b)),
            None => Ok(0),
        }
    }
}

/// gzip-compresses `data` (one member).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}
