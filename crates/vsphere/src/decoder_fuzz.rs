//! Property tests: no decoder in the client panics on malformed or hostile answers, whether
//! arbitrary bytes or real vcsim answers with bytes flipped, inserted, deleted or cut off.
//!
//! CI runs a small number of cases; run longer locally with
//! `CO_VSPHERE_FUZZ_CASES=200000 cargo test -p co-vsphere --lib decoder_fuzz --release`.

use proptest::prelude::*;

use crate::decode::{self, Node};
use crate::esxcli::wire as esxcli;
use crate::object::{disks_from_devices, parse_adapters, select_adapters};
use crate::soap;

const VM_PROPERTIES: &str = include_str!("../tests/fixtures/vcsim_vm_devices_layout.xml");
const HOST_STORAGE: &str = include_str!("../tests/fixtures/vcsim_host_storage_device.xml");
const INVALID_LOGIN: &str = include_str!("../tests/fixtures/vcsim_invalid_login.xml");
const EXECUTE_SOAP: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ExecuteSoapResponse xmlns="urn:vim25"><returnval><response>&lt;obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfDataObject"&gt;&lt;DataObject&gt;&lt;Device&gt;naa.1&lt;/Device&gt;&lt;Paths&gt;&lt;string&gt;a&lt;/string&gt;&lt;/Paths&gt;&lt;/DataObject&gt;&lt;/obj&gt;</response></returnval></ExecuteSoapResponse></soapenv:Body></soapenv:Envelope>"#;
const EXECUTE_SOAP_FAULT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ExecuteSoapResponse xmlns="urn:vim25"><returnval><fault><faultMsg>boom</faultMsg><faultDetail>&lt;obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"&gt;&lt;fault xsi:type="NotFound"&gt;&lt;errMsg&gt;x&lt;/errMsg&gt;&lt;/fault&gt;&lt;/obj&gt;</faultDetail></fault></returnval></ExecuteSoapResponse></soapenv:Body></soapenv:Envelope>"#;

fn cases() -> u32 {
    std::env::var("CO_VSPHERE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Runs every decoder that sees server bytes; the only requirement is that none panics.
fn exercise(bytes: &[u8]) {
    for method in ["RetrievePropertiesEx", "ExecuteSoap", "Login"] {
        for status in [200, 500] {
            if let Ok(response) = soap::parse_response(method, status, bytes) {
                exercise_response(&response);
            }
        }
    }
    if let Ok(root) = decode::parse(bytes) {
        exercise_node(&root);
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = esxcli::decode_cli_response(&text);
    let _ = esxcli::decode_command_info(&text);
}

fn exercise_response(response: &Node) {
    if let Ok(esxcli::SoapResult::Response(Some(xml))) = esxcli::decode_execute_soap(response) {
        let _ = esxcli::decode_cli_response(&xml);
        let _ = esxcli::decode_command_info(&xml);
    }
    exercise_node(response);
}

fn exercise_node(node: &Node) {
    let mut stack = vec![node];
    let mut visited = 0;
    while let Some(n) = stack.pop() {
        visited += 1;
        if visited > 2_000 {
            break;
        }
        let _ = disks_from_devices(n);
        let _ = parse_adapters(n, Some("guid"));
        let _ = select_adapters(n, "mpx.vmhba0:C0:T0:L0", None, true);
        let _ = crate::ManagedObjectReference::from_node(n);
        let _ = n.leaf_texts();
        stack.extend(n.children.iter());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let len = out.len().max(1);
        match m {
            Mutation::Flip(at, mask) => {
                if !out.is_empty() {
                    let i = at % out.len();
                    out[i] ^= mask;
                }
            }
            Mutation::Insert(at, bytes) => {
                let i = at % (out.len() + 1);
                out.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(at, n) => {
                let i = at % len;
                let end = (i + n).min(out.len());
                if i < end {
                    out.drain(i..end);
                }
            }
            Mutation::Truncate(at) => out.truncate(at % len),
        }
    }
    out
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // XML-significant fragments make mutations reach deeper than random bytes alone.
    let fragment = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</".to_vec()),
        Just(b"&amp;".to_vec()),
        Just(b"&#x0;".to_vec()),
        Just(b"&#xFFFFFFFF;".to_vec()),
        Just(br#" xsi:type="ArrayOfDataObject""#.to_vec()),
        Just(b"<![CDATA[x]]>".to_vec()),
        Just(b"<!DOCTYPE x [<!ENTITY a \"b\">]>".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..16),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(a, m)| Mutation::Flip(a, m)),
        (any::<usize>(), fragment).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Mutation::Delete(a, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn seeds() -> Vec<&'static str> {
    vec![
        VM_PROPERTIES,
        HOST_STORAGE,
        INVALID_LOGIN,
        EXECUTE_SOAP,
        EXECUTE_SOAP_FAULT,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_real_answers_never_panic(
        seed in 0usize..5,
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let seed = seeds()[seed];
        exercise(&apply(seed.as_bytes(), &mutations));
    }
}

#[test]
fn the_seeds_decode_cleanly() {
    // The fuzz seeds are real answers: they must decode, or the mutations test nothing.
    let vm = soap::parse_response("RetrievePropertiesEx", 200, VM_PROPERTIES.as_bytes()).unwrap();
    let devices = vm
        .descend(&["returnval", "objects"])
        .and_then(|o| {
            o.children_named("propSet")
                .find(|p| p.text_of("name") == Some("config.hardware.device"))
        })
        .and_then(|p| p.child("val"))
        .unwrap();
    assert_eq!(disks_from_devices(devices).len(), 1);

    let host = soap::parse_response("RetrievePropertiesEx", 200, HOST_STORAGE.as_bytes()).unwrap();
    let storage = host
        .descend(&["returnval", "objects"])
        .and_then(|o| {
            o.children_named("propSet")
                .find(|p| p.text_of("name") == Some("config.storageDevice"))
        })
        .and_then(|p| p.child("val"))
        .unwrap();
    let local = select_adapters(storage, "mpx.vmhba0:C0:T0:L0", None, false).unwrap();
    assert_eq!(local.adapters[0].device, "vmhba0");

    let err = soap::parse_response("Login", 500, INVALID_LOGIN.as_bytes()).unwrap_err();
    assert!(err.is_fault(crate::FaultKind::InvalidLogin), "{err:?}");

    let soap_ok = soap::parse_response("ExecuteSoap", 200, EXECUTE_SOAP.as_bytes()).unwrap();
    assert!(matches!(
        esxcli::decode_execute_soap(&soap_ok),
        Ok(esxcli::SoapResult::Response(Some(_)))
    ));
}
