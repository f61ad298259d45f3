//! The closed value types users type by hand: datastore paths, vendor names, clone methods.

use co_api::{
    CloneMethod, DatastorePath, DatastorePathError, Secret, StorageVendorProduct, UnknownVendor,
};
use proptest::prelude::*;

#[test]
fn datastore_paths_upstream_rejected_but_we_accept() {
    let cases = [
        // (input, datastore, path, esxi path)
        (
            "[ds] vm/vm.vmdk",
            "ds",
            "vm/vm.vmdk",
            "/vmfs/volumes/ds/vm/vm.vmdk",
        ),
        (
            "[ds] a/b/c/disk.vmdk",
            "ds",
            "a/b/c/disk.vmdk",
            "/vmfs/volumes/ds/a/b/c/disk.vmdk",
        ),
        (
            "[ds] disk.vmdk",
            "ds",
            "disk.vmdk",
            "/vmfs/volumes/ds/disk.vmdk",
        ),
        (
            "[my data store] my vm/my disk_1.vmdk",
            "my data store",
            "my vm/my disk_1.vmdk",
            "/vmfs/volumes/my data store/my vm/my disk_1.vmdk",
        ),
        (
            "[ds] vm/vm-000001.VMDK",
            "ds",
            "vm/vm-000001.VMDK",
            "/vmfs/volumes/ds/vm/vm-000001.VMDK",
        ),
        (
            "[ds] vm/a..b.vmdk",
            "ds",
            "vm/a..b.vmdk",
            "/vmfs/volumes/ds/vm/a..b.vmdk",
        ),
        (
            "[ds-ü] vm/ディスク.vmdk",
            "ds-ü",
            "vm/ディスク.vmdk",
            "/vmfs/volumes/ds-ü/vm/ディスク.vmdk",
        ),
    ];
    for (input, datastore, path, esxi) in cases {
        let parsed = DatastorePath::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed.datastore(), datastore, "{input}");
        assert_eq!(parsed.path(), path, "{input}");
        assert_eq!(parsed.esxi_path(), esxi, "{input}");
        assert_eq!(parsed.to_string(), input, "{input}");
    }
}

#[test]
fn datastore_paths_rejected_with_a_reason() {
    use DatastorePathError::*;
    let cases = [
        ("", Empty),
        ("   ", Empty),
        ("ds] vm/vm.vmdk", MissingOpenBracket),
        ("[ds vm/vm.vmdk", MissingCloseBracket),
        ("[] vm/vm.vmdk", EmptyDatastore),
        ("[  ] vm/vm.vmdk", EmptyDatastore),
        ("[d/s] vm/vm.vmdk", InvalidDatastoreName),
        ("[d[s] vm/vm.vmdk", InvalidDatastoreName),
        ("[ds]", MissingFile),
        ("[ds]   ", MissingFile),
        ("[ds] /vm/vm.vmdk", AbsolutePath),
        ("[ds] ../other/vm.vmdk", InvalidComponent),
        ("[ds] vm/../../etc/passwd.vmdk", InvalidComponent),
        ("[ds] vm/./vm.vmdk", InvalidComponent),
        ("[ds] vm//vm.vmdk", InvalidComponent),
        ("[ds] vm/", InvalidComponent),
        ("[ds] vm/vm.vmdk\0", ControlCharacter),
        ("[ds] vm/vm\n.vmdk", ControlCharacter),
        ("[ds]\tvm/vm.vmdk", ControlCharacter),
        ("[ds] vm/vm-flat", NotVmdk),
        ("[ds] vm/vm.vmdk.bak", NotVmdk),
        ("[ds] vm/.vmdk", NotVmdk),
        ("[ds] vm", NotVmdk),
    ];
    for (input, expected) in cases {
        assert_eq!(DatastorePath::parse(input), Err(expected), "{input:?}");
    }
    // Messages say what was expected.
    let message = DatastorePath::parse("ds/vm.vmdk").unwrap_err().to_string();
    assert!(message.contains("[datastore1] vm-1/vm-1.vmdk"), "{message}");
}

#[test]
fn datastore_path_serde_uses_the_text_form() {
    let path: DatastorePath = serde_json::from_str("\"[ds] vm/vm.vmdk\"").unwrap();
    assert_eq!(serde_json::to_string(&path).unwrap(), "\"[ds] vm/vm.vmdk\"");
    assert!(serde_json::from_str::<DatastorePath>("\"[ds] ../x.vmdk\"").is_err());
}

fn name_part() -> impl Strategy<Value = String> {
    // Printable names with spaces, dots and non-ASCII letters; no '/', '[' or ']'.
    "[a-zA-Z0-9 _.ü-]{0,12}[a-zA-Z0-9_ü-]".prop_filter("not a dot component", |s| {
        s != "." && s != ".." && !s.starts_with(' ')
    })
}

proptest! {
    #[test]
    fn display_round_trips(
        datastore in name_part(),
        folders in proptest::collection::vec(name_part(), 0..4),
        file in name_part(),
    ) {
        let mut path = folders.join("/");
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&file);
        path.push_str(".vmdk");
        let text = format!("[{datastore}] {path}");
        let parsed = DatastorePath::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(DatastorePath::parse(&parsed.to_string()).unwrap(), parsed.clone());
        prop_assert_eq!(parsed.esxi_path(), format!("/vmfs/volumes/{datastore}/{path}"));
    }

    #[test]
    fn parse_never_panics(input in "\\PC{0,40}") {
        let _ = DatastorePath::parse(&input);
    }
}

#[test]
fn unknown_vendor_names_all_nine() {
    let err: UnknownVendor = "netapp".parse::<StorageVendorProduct>().unwrap_err();
    let message = err.to_string();
    assert_eq!(
        message,
        "\"netapp\" is not a supported storage vendor product; expected one of: vantara, ontap, \
         primera3par, pureFlashArray, powerflex, powermax, powerstore, infinibox, flashsystem"
    );
    assert_eq!(StorageVendorProduct::ALL.len(), 9);
}

#[test]
fn clone_method_wire_names() {
    assert_eq!(serde_json::to_string(&CloneMethod::Vib).unwrap(), "\"vib\"");
    assert_eq!(serde_json::to_string(&CloneMethod::Ssh).unwrap(), "\"ssh\"");
    assert_eq!(CloneMethod::default(), CloneMethod::Vib);
}

#[test]
fn secret_is_redacted_inside_larger_structures() {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Credentials {
        user: String,
        password: Secret,
    }
    let creds = Credentials {
        user: "admin".into(),
        password: Secret::new("pa55w0rd"),
    };
    let debug = format!("{creds:?}");
    assert!(
        debug.contains("admin") && !debug.contains("pa55w0rd"),
        "{debug}"
    );
}
