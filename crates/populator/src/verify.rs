//! Verify: prove that the device ESXi shows is the volume the array resolved for the PV, before a
//! single byte is written to it. A device that is not provably the target
//! — another name, another size, too small, or the LUN under the source datastore itself — is
//! refused.

use co_storage::Volume;

use co_vsphere::esxcli::DeviceInfo;

const MIB: u64 = 1024 * 1024;

/// What the device must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub volume: &'a Volume,
    pub source_bytes: u64,
    /// Devices under VMFS datastores in use (at least the source datastore's extents).
    pub datastore_devices: &'a [String],
}

/// `Ok` when `device` is provably `expected.volume` and can hold the source; otherwise the reason.
pub fn verify_device(expected: Expected<'_>, device: &DeviceInfo) -> Result<(), String> {
    let want = expected.volume.naa.as_str();
    if !device.naa.eq_ignore_ascii_case(want) {
        return Err(format!(
            "the host reports device {} where the array's volume {} is {want}",
            device.naa, expected.volume.name
        ));
    }
    if expected
        .datastore_devices
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&device.naa))
    {
        return Err(
            "it backs a VMFS datastore in use (the source datastore); the PV must be a separate volume".into(),
        );
    }
    if !device.is_on() {
        return Err(format!("its status is {:?}, not \"on\"", device.status));
    }
    // esxcli reports whole MiB; the array knows the exact size.
    let array_mib = expected.volume.size_bytes / MIB;
    let device_mib = device.size_bytes / MIB;
    if array_mib.abs_diff(device_mib) > 1 {
        return Err(format!(
            "the host sees {device_mib} MiB but the array's volume {} has {array_mib} MiB, so it is another LUN",
            expected.volume.name
        ));
    }
    // esxcli floors the size to whole MiB; within that tolerance the array's exact size decides.
    if device.size_bytes.max(expected.volume.size_bytes) < expected.source_bytes {
        return Err(format!(
            "it holds {} bytes, less than the source disk's {}",
            device.size_bytes, expected.source_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use co_storage::DeviceName;

    use super::*;

    fn volume(size: u64) -> Volume {
        Volume {
            id: "1".into(),
            name: "/vol/a/lun0".into(),
            naa: DeviceName::parse("naa.600a0980aa").unwrap(),
            serial: "s".into(),
            size_bytes: size,
        }
    }

    fn device(naa: &str, mib: u64, status: &str) -> DeviceInfo {
        DeviceInfo {
            naa: naa.into(),
            size_bytes: mib * MIB,
            status: status.into(),
        }
    }

    #[test]
    fn only_the_resolved_volume_passes() {
        let v = volume(1024 * MIB);
        let ds = vec!["naa.600a0980ff".to_owned()];
        let expected = Expected {
            volume: &v,
            source_bytes: 64 * MIB,
            datastore_devices: &ds,
        };
        assert!(verify_device(expected, &device("naa.600A0980AA", 1024, "on")).is_ok());
        assert!(verify_device(expected, &device("naa.600a0980bb", 1024, "on")).is_err());
        assert!(verify_device(expected, &device("naa.600a0980aa", 2048, "on")).is_err());
        assert!(verify_device(expected, &device("naa.600a0980aa", 1024, "off")).is_err());
        let small = Expected {
            source_bytes: 2048 * MIB,
            ..expected
        };
        assert!(verify_device(small, &device("naa.600a0980aa", 1024, "on")).is_err());
        let on_datastore = Expected {
            datastore_devices: &["naa.600a0980aa".to_owned()],
            ..expected
        };
        let err = verify_device(on_datastore, &device("naa.600a0980aa", 1024, "on")).unwrap_err();
        assert!(err.contains("VMFS datastore"), "{err}");
    }
}
