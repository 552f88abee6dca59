//! Real messages shared by the netproto tests and the dissectors' benches (each with where
//! it comes from).

use super::hex;

/// RFC 5769 §2.1 sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
/// MESSAGE-INTEGRITY, FINGERPRINT).
pub fn rfc5769_request() -> Vec<u8> {
    hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
         00 24 00 04 6e 00 01 ff
         80 29 00 08 93 2f f9 b1 51 26 3b 36
         00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
         00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
         80 28 00 04 e5 7a 3b cf")
}

/// RFC 5769 §2.2 sample IPv4 response.
pub fn rfc5769_ipv4_response() -> Vec<u8> {
    hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 08 00 01 a1 47 e1 12 a6 43
         00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
         80 28 00 04 c0 7d 4c 96")
}

/// peafowl/viber.pcap frame 2: `graph.facebook.com A?`, id 0xe183.
pub fn query() -> Vec<u8> {
    hex("e183010000010000000000000567726170680866616365626f6f6b03636f6d0000010001")
}

/// Frame 3: CNAME api.facebook.com, CNAME star.c10r.facebook.com, A 31.13.86.8; two NS in
/// authority and their two A glue records in additional, all compressed.
pub fn response() -> Vec<u8> {
    hex(
        "e183818000010003000200020567726170680866616365626f6f6b03636f6d0000010001c00c000500
         0100000afd000603617069c012c0300005000100000370000c04737461720463313072c012c0420001
         00010000002200041f0d5608c0470002000100000a1500070162026e73c047c0470002000100000a15
         000401 61c06cc07d0001000100000a15000445abef0bc06a0001000100000a15000445abff0b",
    )
}

/// ndpi/discord.pcap frame 3: one record holding the ClientHello (SNI discord.com, ALPN h2 and
/// http/1.1, 12 cipher suites; `tshark -r ndpi/discord.pcap -Y tls.handshake.type==1 -T fields
/// -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str`).
pub fn client_hello_record() -> Vec<u8> {
    hex(
        "16030100ab010000a70303f1f318c3e72492ca306f3789eaff28710f00dcc8987c96a6ad43679b79151b
         0a000018c02bc02ccca9c02fc030cca8c013c014009c009d002f003501000066ff010001000000001000
         0e00000b646973636f72642e636f6d0017000000230000000d0014001204030804040105030805050108
         06060102010005000501000000000010000e000c02683208687474702f312e31000b00020100000a0008
         0006001d00170018",
    )
}
