//! `nodewarden runbook validate`: the runbook checked with file:line:column.

use super::*;

pub(super) fn validate(args: &Args, file: Option<&Path>) -> Result<ExitCode> {
    let output = args.output.unwrap_or(Output::Text);
    let target = file.or(args.runbook.as_deref());
    let result = match target {
        Some(p) => runbook::load_file(p),
        None => Ok(load_runbook(None)?),
    };
    match result {
        Ok(l) => {
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "source": l.source, "warnings": l.warnings})
                );
            } else {
                for w in &l.warnings {
                    eprintln!("{}", w.render(&l.source));
                }
                println!("{}: valid ({} steps)", l.source, l.runbook.spec.steps.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if output == Output::Json {
                let diags = match &e {
                    runbook::RunbookError::Invalid { diagnostics, .. } => diagnostics.clone(),
                    _ => Vec::new(),
                };
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": e.to_string(), "diagnostics": diags})
                );
            } else {
                eprintln!("{e}");
            }
            Ok(ExitCode::from(2))
        }
    }
}
