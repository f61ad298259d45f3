//! PowerMax's own keys: which array, and the port group its masking views use.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey, finish, required};

const SYMMETRIX_ID: VendorKey = VendorKey {
    flag: flags::POWERMAX_SYMMETRIX_ID,
    required: true,
    help: "the 12-digit Symmetrix id of the array, e.g. 000197900123 (required for powermax)",
};
const PORT_GROUP_NAME: VendorKey = VendorKey {
    flag: flags::POWERMAX_PORT_GROUP_NAME,
    required: true,
    help: "the port group for the masking view (required for powermax)",
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `POWERMAX_SYMMETRIX_ID`.
    pub symmetrix_id: String,
    /// `POWERMAX_PORT_GROUP_NAME`.
    pub port_group_name: String,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::PowerMax;
    const KEYS: &'static [VendorKey] = &[SYMMETRIX_ID, PORT_GROUP_NAME];

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let symmetrix_id = required(lookup, &SYMMETRIX_ID, &mut problems)
            .map(|id| id.trim().to_owned())
            .filter(|id| {
                let valid = id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit());
                if !valid {
                    problems.push(SettingProblem::new(
                        SYMMETRIX_ID.flag,
                        format!(
                            "{id:?} is not a Symmetrix id; expected {}",
                            SYMMETRIX_ID.help
                        ),
                    ));
                }
                valid
            });
        let port_group_name = required(lookup, &PORT_GROUP_NAME, &mut problems)
            .map(|name| name.trim().to_owned())
            .filter(|name| {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    problems.push(SettingProblem::new(
                        PORT_GROUP_NAME.flag,
                        format!(
                            "{name:?} is not a Unisphere object name (1 to 64 letters, digits, _ or -); expected {}",
                            PORT_GROUP_NAME.help
                        ),
                    ));
                }
                valid
            });
        let settings = symmetrix_id
            .zip(port_group_name)
            .map(|(symmetrix_id, port_group_name)| Self {
                symmetrix_id,
                port_group_name,
            });
        finish(settings, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use co_api::contract::flags::Flag;

    fn read(sid: &str, pg: &str) -> Result<Settings, Vec<SettingProblem>> {
        let (sid, pg) = (sid.to_owned(), pg.to_owned());
        let lookup = move |flag: &Flag| {
            if *flag == flags::POWERMAX_SYMMETRIX_ID {
                Some(sid.clone())
            } else if *flag == flags::POWERMAX_PORT_GROUP_NAME {
                Some(pg.clone())
            } else {
                None
            }
        };
        Settings::read(&lookup)
    }

    #[test]
    fn the_symmetrix_id_and_port_group_are_checked_up_front() {
        let ok = read(" 000197900123 ", "esx_pg").unwrap();
        assert_eq!(ok.symmetrix_id, "000197900123");
        assert_eq!(ok.port_group_name, "esx_pg");
        let problems = read("PMAX-1", "esx pg").unwrap_err();
        let flags: Vec<Flag> = problems.iter().map(|p| p.flag).collect();
        assert_eq!(
            flags,
            [
                flags::POWERMAX_SYMMETRIX_ID,
                flags::POWERMAX_PORT_GROUP_NAME
            ]
        );
        assert!(problems[0].message.contains("12-digit"), "{problems:?}");
    }
}
