//! Any bytes given to the runbook loader yield a runbook or an error with a
//! position; never a panic, never unbounded work (alias bombs, deep nesting).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match nodewarden::runbook::parse("fuzz.yaml", text) {
            Ok(loaded) => {
                // A valid runbook prints back to a runbook that validates to the same thing.
                let shown = nodewarden::runbook::to_yaml(&loaded.runbook);
                let again = nodewarden::runbook::parse("shown.yaml", &shown)
                    .expect("runbook show output must validate");
                assert_eq!(again.runbook, loaded.runbook);
                // …and shows the same again: show is a fixed point after one round.
                assert_eq!(nodewarden::runbook::to_yaml(&again.runbook), shown);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
