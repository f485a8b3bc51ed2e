import Testing
import TriplineAlerts

/// Certificate subjects as principals name them (`subject:`, RFC 4514): what is one name, what is another.
@Suite("certificate subjects (RFC 4514)")
struct SubjectNameTests {
    @Test("one name in several spellings: type case and long names, spaces, escapes, OIDs, multi-valued RDN order")
    func spellings() throws {
        let canonical = #"CN=Analyst BE,OU=Liaison\, Brussels,O=Federal Police,C=BE"#
        for text in [
            canonical,
            #"cn=Analyst BE, ou=Liaison\, Brussels, o=Federal Police, c=BE"#,
            #" commonName = Analyst BE ,organizationalUnitName=Liaison\2C Brussels,O=Federal Police,countryName=BE"#,
            #"2.5.4.3=Analyst BE,OID.2.5.4.11=Liaison\, Brussels,2.5.4.10=Federal Police,2.5.4.6=BE"#,
        ] {
            #expect(SubjectName(parsing: text)?.description == canonical, "\(text)")
        }
        // The attributes of one RDN in either order; escaped and hex-escaped UTF-8 values.
        #expect(SubjectName(parsing: "CN=a+UID=b,O=x") == SubjectName(parsing: "uid=b+cn=a,O=x"))
        #expect(SubjectName(parsing: "uid=b+cn=a,O=x")?.description == "CN=a+UID=b,O=x")
        #expect(
            SubjectName(parsing: ##"CN=Andr\C3\A9,O=\#\+\;\<\>\"\\"##)?.rdns.map { $0.map(\.value) } == [
                ["André"], [#"#+;<>"\"#],
            ])
        #expect(SubjectName(parsing: #"CN=\ padded\ ,C=BE"#)?.description == #"CN=\ padded\ ,C=BE"#)
        #expect(SubjectName(parsing: "CN=a,CN=b")?.commonNames == ["a", "b"])
        // Values compare exactly; RDN order matters.
        #expect(SubjectName(parsing: "CN=partner-be") != SubjectName(parsing: "CN=Partner-BE"))
        #expect(SubjectName(parsing: "CN=a,O=b") != SubjectName(parsing: "O=b,CN=a"))
    }

    @Test("not a distinguished name: nil")
    func malformed() {
        for text in [
            "", "partner-be", "=x", "CN=a,", "CN=a,,O=b", "CN=a;O=b", #"CN="quoted""#, "CN=#04024869", #"CN=a\"#,
            #"CN=a\zz"#, "C N=a", #"CN=\FF"#,
        ] {
            #expect(SubjectName(parsing: text) == nil, "\(text)")
        }
    }
}
