//! Who runs a `nodewarden maintenance` command, for the record: `SUDO_USER`
//! (a `sudo` shell), else the name of the login uid (`/proc/self/loginuid`,
//! set by pam_loginuid at login and kept across `su`/`sudo -i`), else `USER`.
//! A root or sudo shell then records the person, not "root" or "unknown user".

/// The login uid's value when none was set (a process started outside a login).
const UNSET_LOGINUID: &str = "4294967295";

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Pure: the person from the environment and the two files' contents.
pub fn person(
    sudo_user: Option<&str>,
    loginuid: Option<&str>,
    passwd: Option<&str>,
    user: Option<&str>,
) -> Option<String> {
    if let Some(s) = nonempty(sudo_user) {
        return Some(s.to_string());
    }
    let by_uid = nonempty(loginuid)
        .filter(|u| *u != UNSET_LOGINUID)
        .and_then(|uid| {
            passwd?.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _pw = f.next()?;
                (f.next()? == uid).then(|| name.to_string())
            })
        });
    by_uid.or_else(|| nonempty(user).map(str::to_string))
}

/// The person running this process; "unknown user" when nothing says.
pub fn current() -> String {
    let env = |k: &str| std::env::var(k).ok();
    // Local files read once by a short-lived CLI command.
    let read = |p: &str| std::fs::read_to_string(p).ok();
    person(
        env("SUDO_USER").as_deref(),
        read("/proc/self/loginuid").as_deref(),
        read("/etc/passwd").as_deref(),
        env("USER").or_else(|| env("LOGNAME")).as_deref(),
    )
    .unwrap_or_else(|| "unknown user".to_string())
}

#[cfg(test)]
mod tests;
