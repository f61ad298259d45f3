//! The class of each kind of fault the lab can inject, end to end: a fault at every kind of call
//! site (vCenter SOAP, the array's REST API, esxcli, the ESXi SSH wrapper, `/folder` transfers)
//! ends the run with the exit code of the class the library errors answer, so the controller
//! retries exactly the failures a re-run can get past — and the lab is left clean every time.

use crate::e2e_support;

use co_lab::faults::FaultRule;
use co_populator::ExitCode;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};

struct Case {
    site: &'static str,
    ssh: bool,
    /// What the run must exit with, and why.
    expected: ExitCode,
}

const CASES: &[Case] = &[
    // vCenter answered SystemError: the call did not run; a re-run may pass.
    Case {
        site: "soap:RetrievePropertiesEx",
        ssh: false,
        expected: ExitCode::Retryable,
    },
    // The array stayed at 503 through every bounded retry: overloaded, try again later.
    Case {
        site: "array:ontap1:GET /api/storage/luns",
        ssh: false,
        expected: ExitCode::Retryable,
    },
    // esxcli answered with a failure of the command itself: the host's answer, not transit.
    Case {
        site: "esxcli:vmkfstools clone",
        ssh: false,
        expected: ExitCode::Permanent,
    },
    // The wrapper script could not be placed on the datastore (HTTP 500 from /folder).
    Case {
        site: "folder:PUT",
        ssh: true,
        expected: ExitCode::Retryable,
    },
    // The wrapper refused the clone over SSH: the host's answer.
    Case {
        site: "ssh:clone",
        ssh: true,
        expected: ExitCode::Permanent,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_injected_fault_exits_with_its_class() {
    let rig = LabRig::start().await;
    let mut seen = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let name = format!("pvc_fault_{index}");
        rig.target_volume(&name, 64 * MIB);
        let mut args = rig.args(&name);
        let mut options = rig.options(&name);
        if case.ssh {
            rig.use_ssh(&mut args, &mut options);
        }
        rig.lab.faults.add(FaultRule {
            site: case.site.into(),
            latency_ms: 0,
            error: Some(format!("injected at {}", case.site)),
            times: None,
        });
        let summary = run_with(rig.config(&args), options).await;
        rig.lab.faults.clear();
        seen.push(format!(
            "{:<40} {:?} ({})",
            case.site,
            summary.exit_code,
            summary
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
        assert_eq!(
            summary.exit_code, case.expected,
            "{}: {:?}",
            case.site, summary.error
        );
        rig.assert_untouched(&name);
        rig.assert_clean(&name);
    }
    println!("{}", seen.join("\n"));
}
