//! kube-encrypt validating admission webhook: decodes AdmissionReviews, runs the shared rules
//! of `kube_encrypt_api::rules`, answers allow / deny / warn; plus the EncryptionConfig status
//! controller.
