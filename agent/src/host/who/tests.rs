use super::*;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n";

#[test]
fn sudo_user_then_login_uid_then_user() {
    assert_eq!(
        person(Some("bob"), Some("1000"), Some(PASSWD), Some("root")).as_deref(),
        Some("bob")
    );
    // `sudo -i` or `su -` from alice's login: SUDO_USER may be gone, USER is root.
    assert_eq!(
        person(None, Some("1000"), Some(PASSWD), Some("root")).as_deref(),
        Some("alice")
    );
    assert_eq!(
        person(Some(""), Some("4294967295"), Some(PASSWD), Some("carol")).as_deref(),
        Some("carol")
    );
    assert_eq!(
        person(None, Some("1234"), Some(PASSWD), None),
        None,
        "an unknown uid and no USER: nothing to record"
    );
    assert_eq!(person(None, None, None, None), None);
}
