//! The restart protocol: `Subscribe`, the `JobRemoved` stream, `RestartUnit`,
//! the job's result, then `ActiveState=active` with a new `InvocationID`, all
//! under one deadline (see docs/platform-facts.md).

use futures::StreamExt;
use tokio::time::Instant;

use super::*;

impl DbusSystemd {
    async fn ensure_subscribed(
        &self,
        mgr: &ManagerProxy<'_>,
        deadline: Instant,
    ) -> Result<(), SystemdError> {
        {
            let slot = self.conn.lock().await;
            if slot
                .as_ref()
                .is_some_and(|c| c.subscribed && same_conn(&c.conn, mgr.inner().connection()))
            {
                return Ok(());
            }
        }
        match self
            .call(
                || "Subscribe()".to_string(),
                Some(deadline),
                mgr.subscribe(),
            )
            .await
        {
            Ok(()) => {}
            // a second Subscribe on the same connection is refused; that is fine
            Err(SystemdError::Bus { source, .. })
                if error_name(&source).is_some_and(|n| n.ends_with(".AlreadySubscribed")) => {}
            Err(e) => return Err(e),
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_mut()
            && same_conn(&c.conn, mgr.inner().connection())
        {
            c.subscribed = true;
        }
        Ok(())
    }

    pub(super) async fn restart_inner(
        &self,
        unit: &str,
        deadline: Instant,
        started: Instant,
    ) -> Result<RestartOutcome, SystemdError> {
        let conn = self.connection().await?;
        let before = self.status_on(&conn, unit, Some(deadline)).await?;
        let mgr = self.manager(&conn).await?;
        self.ensure_subscribed(&mgr, deadline).await?;
        // the stream (its match rule) exists before the job does: no JobRemoved can be missed
        let mut removed = self
            .call(
                || "AddMatch(JobRemoved)".to_string(),
                Some(deadline),
                mgr.receive_job_removed(),
            )
            .await?;
        let job = self
            .call(
                || format!("RestartUnit({unit}, replace)"),
                Some(deadline),
                mgr.restart_unit(unit, "replace"),
            )
            .await
            .map_err(|e| not_found_or(unit, e))?;
        let job_str = job.as_str().to_string();
        let wait = async {
            while let Some(sig) = removed.next().await {
                let Ok(args) = sig.args() else { continue };
                if args.job().as_str() == job.as_str() {
                    return Ok(JobResult::parse(args.result()));
                }
            }
            Err(SystemdError::Protocol {
                what: format!("the restart job {job_str} of {unit}"),
                detail: "the bus connection closed before JobRemoved arrived".into(),
            })
        };
        let result = match tokio::time::timeout_at(deadline, wait).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SystemdError::Timeout {
                    what: format!(
                        "waiting for the restart job {job_str} of {unit} to finish (still running in systemd)"
                    ),
                    after: deadline - started,
                });
            }
        };
        drop(removed);
        if result != JobResult::Done {
            return Err(SystemdError::JobFailed {
                unit: unit.to_string(),
                job: job_str,
                result,
            });
        }
        // confirm: active, and a new run (InvocationID; ActiveEnterTimestamp on systemd < 232)
        loop {
            let now = self.status_on(&conn, unit, Some(deadline)).await?;
            let new_run = match (&before.invocation_id, &now.invocation_id) {
                (Some(a), Some(b)) => a != b,
                (None, Some(_)) => true,
                _ => now.active_enter > before.active_enter,
            };
            let state = format!("{}/{}", now.active_state, now.sub_state);
            if now.is_active() && new_run {
                return Ok(RestartOutcome {
                    unit: unit.to_string(),
                    job: job_str,
                    result,
                    before,
                    after: now,
                    elapsed: started.elapsed(),
                });
            }
            // gone down again (crashed right after start-up, or stopped): no point waiting
            let settled_bad = matches!(
                now.active_state.as_str(),
                "failed" | "inactive" | "deactivating"
            ) || now.sub_state == "auto-restart";
            let detail = if now.is_active() {
                format!(
                    "InvocationID still {}",
                    now.invocation_id.as_deref().unwrap_or("unset")
                )
            } else {
                format!("state {state} once the job was done")
            };
            if settled_bad || Instant::now() + self.opts.poll_interval >= deadline {
                return Err(SystemdError::NotActiveAfterRestart {
                    unit: unit.to_string(),
                    state,
                    detail,
                });
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }
}
