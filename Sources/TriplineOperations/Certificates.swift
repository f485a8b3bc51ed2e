import TriplineAlerts

/// Client certificates as API credentials (SPEC §10: "client certificates mapped to a principal by subject"). The
/// TLS layer has verified the certificate against the configured client CA; this maps its subject to a principal
/// of the configuration as it is now (a principal removed at a reload is no longer found).
public enum ClientCertificates {
    /// The principal whose `subject:` is the certificate's subject; else, the principal without a `subject:` whose
    /// id is the certificate's one common name. A principal with a `subject:` is matched by that subject only; a
    /// subject with several common names, or none, maps only through a `subject:`.
    public static func principal(for subject: SubjectName, among principals: [Principal]) -> Principal? {
        if let p = principals.first(where: { $0.subject == subject }) { return p }
        let names = subject.commonNames
        guard names.count == 1 else { return nil }
        return principals.first { $0.subject == nil && $0.id == names[0] }
    }
}
