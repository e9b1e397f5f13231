//! Building [`DriverError`]s: the operation that failed plus the kernel's or tool's reason,
//! as in `add route 198.18.2.0/24 table 51820: File exists`.

use std::fmt::Display;

use super::DriverError;

impl DriverError {
    pub fn new(operation: impl Into<String>, message: impl Display) -> Self {
        Self {
            operation: operation.into(),
            message: message.to_string(),
        }
    }

    /// The error of a failed netlink request, with the errno text ("File exists").
    pub(crate) fn netlink(operation: impl Into<String>, err: &rtnetlink::Error) -> Self {
        Self::new(operation, netlink_text(err))
    }
}

/// The errno carried by a netlink error reply, if it is one.
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// `File exists` rather than `Received a netlink error message File exists (os error 17)`.
pub(crate) fn netlink_text(err: &rtnetlink::Error) -> String {
    match netlink_errno(err) {
        Some(code) => errno_text(code),
        None => err.to_string(),
    }
}

/// The C library's text for an errno, without Rust's ` (os error N)` suffix.
pub(crate) fn errno_text(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// An I/O error's text without the ` (os error N)` suffix.
pub(crate) fn io_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            let plain = errno_text(code);
            if text.starts_with(&plain) {
                plain
            } else {
                text
            }
        }
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_drops_the_os_error_suffix() {
        assert_eq!(errno_text(libc::EEXIST), "File exists");
        assert_eq!(errno_text(libc::ENODEV), "No such device");
    }

    #[test]
    fn driver_error_prints_operation_then_reason() {
        let err = DriverError::new(
            "add route 198.18.2.0/24 table 51820",
            errno_text(libc::EEXIST),
        );
        assert_eq!(
            err.to_string(),
            "add route 198.18.2.0/24 table 51820: File exists"
        );
    }
}
