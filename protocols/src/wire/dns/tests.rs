use super::*;
use proptest::prelude::*;

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

/// dnsmasq's answer to `alias.lab.test A` with `--cname=alias.lab.test,www.lab.test` and
/// `--host-record=www.lab.test,10.7.0.80`: flags QR AA RD RA, TTL 0 (dnsmasq's default
/// `--local-ttl`), the CNAME owner a pointer to the question, its target `www` + a pointer to
/// `lab.test` inside the question, the A owner a pointer into the CNAME's data.
const ALIAS_ANSWER: [u8; 66] = [
    0x12, 0x34, 0x85, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // header
    0x05, b'a', b'l', b'i', b'a', b's', 0x03, b'l', b'a', b'b', 0x04, b't', b'e', b's', b't', 0x00,
    0x00, 0x01, 0x00, 0x01, // question
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // CNAME
    0x03, b'w', b'w', b'w', 0xc0, 0x12, // www + -> lab.test
    0xc0, 0x2c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // A
    10, 7, 0, 80,
];

fn alias_repr() -> DnsRepr {
    DnsRepr {
        id: 0x1234,
        flags: Flags {
            response: true,
            authoritative: true,
            recursion_desired: true,
            recursion_available: true,
            ..Flags::default()
        },
        questions: vec![Question {
            name: name("alias.lab.test"),
            qtype: Type::A,
            qclass: Class::In,
        }],
        answers: vec![
            Record {
                name: name("alias.lab.test"),
                class: Class::In,
                ttl: 0,
                data: RecordData::Cname(name("www.lab.test")),
            },
            Record {
                name: name("www.lab.test"),
                class: Class::In,
                ttl: 0,
                data: RecordData::A(Ipv4Addr::new(10, 7, 0, 80)),
            },
        ],
        ..DnsRepr::default()
    }
}

#[test]
fn parse_compressed_answer() {
    let p = DnsPacket::new_checked(&ALIAS_ANSWER[..]).unwrap();
    assert_eq!(p.id(), 0x1234);
    assert_eq!(p.answer_count(), 2);
    assert!(p.flags().response && !p.flags().truncated);
    assert_eq!(DnsRepr::parse(&p), Ok(alias_repr()));
}

#[test]
fn emit_compresses_like_dnsmasq() {
    assert_eq!(alias_repr().to_bytes(), ALIAS_ANSWER.to_vec());
    assert_eq!(alias_repr().buffer_len(), ALIAS_ANSWER.len());
    let mut small = [0u8; 20];
    assert_eq!(alias_repr().emit(&mut small), Err(Error::Truncated));
}

#[test]
fn query_bytes() {
    // The same query as wire/udp.rs's test datagram: `example.com A`, ID 0xabcd, RD.
    let q = DnsRepr::query(0xabcd, name("example.com"), Type::A);
    let expected = [
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    assert_eq!(q.to_bytes(), expected.to_vec());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for n in 0..ALIAS_ANSWER.len() {
        let r = DnsPacket::new_checked(&ALIAS_ANSWER[..n]).and_then(|p| DnsRepr::parse(&p));
        assert_eq!(r, Err(Error::Truncated), "cut at {n}");
    }
}

#[test]
fn truncated_flag_seen_in_header_alone() {
    let mut b = ALIAS_ANSWER;
    b[2] |= 0x02;
    let p = DnsPacket::new_checked(&b[..HEADER_LEN]).unwrap();
    assert!(p.flags().truncated);
}

#[test]
fn pointer_loops_and_forward_pointers_rejected() {
    // A question whose name is a pointer to itself.
    let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
    // A forward pointer.
    b[12..14].copy_from_slice(&[0xc0, 14]);
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
}

#[test]
fn extended_label_types_rejected() {
    let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
}

#[test]
fn overlong_name_rejected() {
    // 5 labels of 63 bytes: 320 bytes, over 255.
    let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..5 {
        b.push(63);
        b.extend_from_slice(&[b'a'; 63]);
    }
    b.extend_from_slice(&[0, 0, 1, 0, 1]);
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
    // And a chain of pointers that builds a long name out of short pieces is bounded too.
    assert!(Name::from_labels([[b'a'; 63]; 4]).is_err());
}

#[test]
fn bad_rdata_lengths_rejected() {
    let mut b = ALIAS_ANSWER.to_vec();
    // A record with RDLENGTH 3 (and one byte less).
    b[61] = 3;
    b.pop();
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
    // CNAME data with a byte after the name.
    let mut b = ALIAS_ANSWER.to_vec();
    b[43] = 7;
    b.insert(50, 0);
    let p = DnsPacket::new_checked(&b[..]).unwrap();
    assert_eq!(DnsRepr::parse(&p), Err(Error::Malformed));
}

#[test]
fn nxdomain_with_soa_and_unknown_type() {
    let soa = Record {
        name: name("lab.test"),
        class: Class::In,
        ttl: 600,
        data: RecordData::Soa(Soa {
            mname: name("ns.lab.test"),
            rname: name("hostmaster.lab.test"),
            serial: 1,
            refresh: 1200,
            retry: 180,
            expire: 1209600,
            minimum: 60,
        }),
    };
    let txt = Record {
        name: name("lab.test"),
        class: Class::In,
        ttl: 5,
        data: RecordData::Other {
            rtype: Type::Txt,
            data: b"\x05hello".to_vec(),
        },
    };
    let repr = DnsRepr {
        id: 7,
        flags: Flags {
            response: true,
            rcode: Rcode::NxDomain,
            ..Flags::default()
        },
        questions: vec![Question {
            name: name("nx.lab.test"),
            qtype: Type::Aaaa,
            qclass: Class::In,
        }],
        authorities: vec![soa],
        additionals: vec![txt],
        ..DnsRepr::default()
    };
    let bytes = repr.to_bytes();
    let parsed = DnsRepr::parse(&DnsPacket::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(parsed, repr);
    assert_eq!(parsed.flags.rcode, Rcode::NxDomain);
}

#[test]
fn names_from_strings() {
    assert_eq!(name("www.lab.test.").to_string(), "www.lab.test");
    assert!(name(".").is_root());
    assert_eq!("a..b".parse::<Name>(), Err(NameError::EmptyLabel));
    assert_eq!(
        format!("{}.x", "a".repeat(64)).parse::<Name>(),
        Err(NameError::LabelTooLong)
    );
    assert!(name("WWW.Lab.test").eq_ignore_case(&name("www.lab.TEST")));
    assert_ne!(name("WWW.Lab.test"), name("www.lab.test"));
    assert_eq!(
        Name::from_labels([b"a.b".as_slice()]).unwrap().to_string(),
        "a\\046b"
    );
}

#[test]
fn flags_roundtrip_all_values() {
    for v in 0..=u16::MAX {
        assert_eq!(u16::from(Flags::from(v)), v);
    }
}

fn arb_name() -> impl Strategy<Value = Name> {
    // Few distinct labels, so that suffixes repeat and compression is exercised.
    let label = prop_oneof![
        Just(b"www".to_vec()),
        Just(b"lab".to_vec()),
        Just(b"test".to_vec()),
        Just(b"WWW".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..=63),
    ];
    proptest::collection::vec(label, 0..5)
        .prop_filter_map("too long", |ls| Name::from_labels(ls).ok())
}

fn arb_data() -> impl Strategy<Value = RecordData> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| RecordData::A(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| RecordData::Aaaa(Ipv6Addr::from(a))),
        arb_name().prop_map(RecordData::Cname),
        arb_name().prop_map(RecordData::Ns),
        arb_name().prop_map(RecordData::Ptr),
        (arb_name(), arb_name(), any::<[u32; 5]>()).prop_map(|(m, r, v)| RecordData::Soa(Soa {
            mname: m,
            rname: r,
            serial: v[0],
            refresh: v[1],
            retry: v[2],
            expire: v[3],
            minimum: v[4],
        })),
        // Types whose data this module keeps raw (not ones it decodes).
        (
            prop_oneof![Just(16u16), Just(15), Just(41), 100u16..200],
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(t, data)| RecordData::Other {
                rtype: Type::from(t),
                data
            }),
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    (arb_name(), any::<u16>(), any::<u32>(), arb_data()).prop_map(|(name, class, ttl, data)| {
        Record {
            name,
            class: Class::from(class),
            ttl,
            data,
        }
    })
}

fn arb_repr() -> impl Strategy<Value = DnsRepr> {
    (
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec((arb_name(), any::<u16>(), any::<u16>()), 0..3),
        proptest::collection::vec(arb_record(), 0..4),
        proptest::collection::vec(arb_record(), 0..3),
        proptest::collection::vec(arb_record(), 0..3),
    )
        .prop_map(|(id, flags, qs, an, ns, ar)| DnsRepr {
            id,
            flags: Flags::from(flags),
            questions: qs
                .into_iter()
                .map(|(name, t, c)| Question {
                    name,
                    qtype: Type::from(t),
                    qclass: Class::from(c),
                })
                .collect(),
            answers: an,
            authorities: ns,
            additionals: ar,
        })
}

proptest! {
    #[test]
    fn roundtrip(repr in arb_repr()) {
        let bytes = repr.to_bytes();
        let packet = DnsPacket::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(DnsRepr::parse(&packet), Ok(repr));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(p) = DnsPacket::new_checked(&bytes[..]) {
            let _ = DnsRepr::parse(&p);
        }
    }

    #[test]
    fn mutated_answer_never_panics(i in 0usize..66, v in any::<u8>()) {
        let mut b = ALIAS_ANSWER;
        b[i] = v;
        if let Ok(p) = DnsPacket::new_checked(&b[..]) {
            if let Ok(r) = DnsRepr::parse(&p) {
                // Whatever parses re-emits to something that parses the same.
                let again = r.to_bytes();
                prop_assert_eq!(DnsRepr::parse(&DnsPacket::new_checked(&again[..]).unwrap()), Ok(r));
            }
        }
    }
}
