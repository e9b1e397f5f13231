//! MTU maths of SPEC §4.3: the WireGuard interface MTU derived from the underlay.
//!
//! ```text
//!  auto MTU = (smallest underlay MTU, or 1460 when none was detected)
//!             − 60 (IPv4) / 80 (IPv6)                 WireGuard + outer IP + UDP headers
//!             − 100 on Azure with host encryption      Azure fragments at 1400, WireGuard sets DF
//! ```
//!
//! | underlay | IPv4 | IPv6 |
//! |---|---|---|
//! | 1500 | 1440 | 1420 |
//! | 9000 | 8940 | 8920 |
//! | 1460 (also: not detected) | 1400 | 1380 |
//! | 1500 on Azure, host encryption | 1340 | 1320 |

use crate::net::Family;

/// The underlay MTU assumed when none was detected (a common cloud VM MTU).
pub const FALLBACK_UNDERLAY_MTU: u32 = 1460;

/// What Azure's fabric costs on top when host traffic is encrypted.
pub const AZURE_HOST_ENCRYPTION_OVERHEAD: u32 = 100;

/// Prefix of `spec.providerID` on Azure nodes.
pub const AZURE_PROVIDER_PREFIX: &str = "azure://";

/// WireGuard's per-packet overhead over an underlay of `family`: outer IP header, UDP header,
/// WireGuard header and authentication tag.
pub const fn overhead(family: Family) -> u32 {
    match family {
        Family::V4 => 60,
        Family::V6 => 80,
    }
}

/// The automatic interface MTU. `underlay` is the smallest MTU of the interfaces carrying
/// node traffic (`None` or `Some(0)`: not detected). Never underflows: an absurdly small
/// underlay yields 0, which the agent reports rather than programs.
pub fn auto(underlay: Option<u32>, family: Family, azure_host_encryption: bool) -> u32 {
    let underlay = underlay
        .filter(|mtu| *mtu > 0)
        .unwrap_or(FALLBACK_UNDERLAY_MTU);
    let azure = if azure_host_encryption {
        AZURE_HOST_ENCRYPTION_OVERHEAD
    } else {
        0
    };
    underlay
        .saturating_sub(overhead(family))
        .saturating_sub(azure)
}

/// True for a node running on Azure (`spec.providerID` starting with `azure://`).
pub fn is_azure(provider_id: Option<&str>) -> bool {
    provider_id.is_some_and(|id| id.starts_with(AZURE_PROVIDER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mtu_table() {
        // (underlay, azure with host encryption, IPv4, IPv6)
        let rows: [(Option<u32>, bool, u32, u32); 9] = [
            (Some(1500), false, 1440, 1420),
            (Some(9000), false, 8940, 8920),
            (Some(1460), false, 1400, 1380),
            (Some(1500), true, 1340, 1320),
            (None, false, 1400, 1380),
            (Some(0), false, 1400, 1380),
            (None, true, 1300, 1280),
            (Some(70), false, 10, 0),
            (Some(50), true, 0, 0),
        ];
        for (underlay, azure, v4, v6) in rows {
            assert_eq!(
                auto(underlay, Family::V4, azure),
                v4,
                "{underlay:?} azure={azure} v4"
            );
            assert_eq!(
                auto(underlay, Family::V6, azure),
                v6,
                "{underlay:?} azure={azure} v6"
            );
        }
    }

    #[test]
    fn azure_is_recognised_by_provider_id() {
        let rows = [
            (Some("azure:///subscriptions/x/vm/0"), true),
            (Some("aws:///eu-west-1a/i-1"), false),
            (Some("kind://docker/kind/node"), false),
            (None, false),
        ];
        for (id, azure) in rows {
            assert_eq!(is_azure(id), azure, "{id:?}");
        }
    }
}
