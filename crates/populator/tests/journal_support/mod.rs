//! Journal values for the journal tests: a volume, the host's initiator group, the steps.

use co_populator::journal::{CleanupStep, JournalEntry};
use co_storage::{
    DeviceName, EsxiHostRef, GroupKind, GroupRef, InitiatorGroup, StorageProtocol, Volume,
};

pub fn volume(name: &str) -> Volume {
    Volume {
        id: format!("id-{name}"),
        name: name.into(),
        naa: DeviceName::parse("naa.600a0980383044372f5d4a2d6b6e6f70").unwrap(),
        serial: "serial".into(),
        size_bytes: 1 << 30,
    }
}

pub fn igroup(name: &str) -> GroupRef {
    GroupRef {
        kind: GroupKind::Igroup,
        name: name.into(),
        id: String::new(),
    }
}

pub fn group() -> InitiatorGroup {
    let igroup = igroup("xcopy-hostsystem-host-1-iscsi");
    InitiatorGroup {
        host: EsxiHostRef {
            host_id: "hostsystem-host-1".into(),
            initiators: vec![],
        },
        protocol: StorageProtocol::Iscsi,
        targets: vec![igroup.clone()],
        owned: vec![igroup],
    }
}

pub fn unmap(name: &str) -> CleanupStep {
    CleanupStep::UnmapVolume {
        volume: volume(name),
        group: group(),
    }
}

pub fn restore(name: &str, groups: Vec<GroupRef>) -> CleanupStep {
    CleanupStep::RestoreMappings {
        volume: volume(name),
        groups,
    }
}

pub fn mapped(name: &str) -> JournalEntry {
    JournalEntry::ChangeMade { undo: unmap(name) }
}
