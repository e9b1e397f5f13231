//! What happened to the dataplane behind the agent's back: a WireGuard interface that was
//! there at the end of one round and is gone at the start of the next (its userspace daemon
//! died, or someone deleted it). The round creates it again; this remembers it happened, so
//! it is logged, counted in metrics and named in the status instead of healing silently.

use std::time::SystemTime;

use kube_encrypt_api::dataplane::Dataplane;
use kube_encrypt_api::net::{Family, PerFamily};

use crate::dataplane::Observed;
use crate::status::rfc3339;

/// Interfaces that vanished and were created again, per family.
#[derive(Debug, Default)]
pub struct Incidents {
    /// The interface each family had when the last round ended.
    present: PerFamily<Option<String>>,
    recreated: PerFamily<Option<Recreations>>,
}

#[derive(Debug, Clone, Copy)]
struct Recreations {
    count: u64,
    last: SystemTime,
}

impl Incidents {
    /// The families whose interface the last round left in place, the plan still wants, and
    /// `observed` (this round, before applying) no longer finds; recorded at `now`.
    pub fn vanished(
        &mut self,
        desired: &Dataplane,
        observed: &Observed,
        now: SystemTime,
    ) -> Vec<(Family, String)> {
        let mut gone = Vec::new();
        for family in Family::ALL {
            let Some(before) = self.present.get(family).clone() else {
                continue;
            };
            let wanted = desired.family(family).interface.as_ref();
            let found = observed.dataplane.family(family).interface.as_ref();
            if found.is_none() && wanted.is_some_and(|w| w.name == before) {
                let slot = self.recreated.get_mut(family);
                let count = slot.map_or(0, |r| r.count) + 1;
                *slot = Some(Recreations { count, last: now });
                gone.push((family, before));
            }
        }
        gone
    }

    /// Remembers the interfaces as the round leaves them.
    pub fn settled(&mut self, observed: &Observed) {
        self.present = PerFamily::from_fn(|family| {
            let interface = observed.dataplane.family(family).interface.as_ref();
            interface.map(|i| i.name.clone())
        });
    }

    /// A sentence for the family's status message, once its interface had to be recreated.
    pub fn note(&self, family: Family) -> Option<String> {
        let recreated = (*self.recreated.get(family))?;
        let times = match recreated.count {
            1 => "once".to_owned(),
            n => format!("{n} times"),
        };
        Some(format!(
            "the WireGuard interface vanished and was recreated {times} since the agent started, last at {} (did its userspace daemon die?)",
            rfc3339(recreated.last)
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube_encrypt_api::crd::BackendKind;
    use kube_encrypt_api::dataplane::InterfaceSpec;

    use super::*;

    fn with_interface(name: Option<&str>) -> Dataplane {
        let mut dataplane = Dataplane::default();
        dataplane.families.v4.interface = name.map(|name| InterfaceSpec {
            name: name.into(),
            backend: BackendKind::Userspace,
            listen_port: 51820,
            fwmark: 0x10_0000,
            mtu: 1420,
            address: None,
        });
        dataplane
    }

    fn observed(name: Option<&str>) -> Observed {
        Observed {
            dataplane: with_interface(name),
            ..Default::default()
        }
    }

    #[test]
    fn only_an_interface_that_was_there_and_is_still_wanted_vanishes() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs);
        let wanted = with_interface(Some("wg0"));
        let mut incidents = Incidents::default();
        assert!(
            incidents
                .vanished(&wanted, &observed(None), at(0))
                .is_empty(),
            "first round: never there"
        );
        incidents.settled(&observed(Some("wg0")));
        assert!(incidents
            .vanished(&wanted, &observed(Some("wg0")), at(1))
            .is_empty());
        assert_eq!(
            incidents.vanished(&wanted, &observed(None), at(2)),
            [(Family::V4, "wg0".to_owned())]
        );
        assert!(
            incidents
                .vanished(&with_interface(None), &observed(None), at(3))
                .is_empty(),
            "disabled: gone on purpose"
        );
        incidents.vanished(&wanted, &observed(None), at(4));
        let note = incidents.note(Family::V4).unwrap();
        assert!(note.contains("recreated 2 times"), "{note}");
        assert!(note.contains("2027-01-15T08:00:04Z"), "{note}");
        assert_eq!(incidents.note(Family::V6), None);
    }
}
