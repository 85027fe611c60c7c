//! Filling an empty schema with another backend's state in one transaction
//! (`store::transfer`), on a connection of its own: dropped before [`Import::commit`], it
//! takes the transaction with it and the schema stays empty.

use tokio_postgres::Client;

use super::{Postgres, pg_error};
use crate::store::{DeadLetter, LastAudit, PendingDelivery, StoreError, StoredNotification};

/// An import under way.
pub struct Import<'a> {
    pg: &'a Postgres,
    client: Client,
}

impl Postgres {
    /// Starts an import: refuses a schema that holds notifications already.
    pub async fn import(&self) -> Result<Import<'_>, StoreError> {
        let client = self
            .target
            .connect()
            .await
            .map_err(|e| StoreError::Unreachable { server: self.described.clone(), detail: pg_error(&e) })?;
        let import = Import { pg: self, client };
        import.run("begin the copy", "BEGIN").await?;
        let rows =
            import.query("look for stored notifications", "SELECT EXISTS (SELECT 1 FROM {s}.notifications)").await?;
        if rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            return Err(StoreError::NotEmpty { server: self.described.clone() });
        }
        Ok(import)
    }
}

impl Import<'_> {
    fn fail(&self, op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        self.pg.fail(op)
    }

    async fn run(&self, op: &'static str, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(&self.pg.sql(sql)).await.map_err(self.fail(op))
    }

    async fn query(&self, op: &'static str, sql: &str) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.client.query(&self.pg.sql(sql), &[]).await.map_err(self.fail(op))
    }

    /// Stores `rows` as they were first seen.
    pub async fn notifications(&mut self, rows: &[StoredNotification]) -> Result<u64, StoreError> {
        let col = |f: fn(&StoredNotification) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let subs: Vec<Option<&str>> = rows.iter().map(|n| n.subscription_name.as_deref()).collect();
        let created: Vec<i64> = rows.iter().map(|n| n.created_ms).collect();
        let seen: Vec<i64> = rows.iter().map(|n| n.first_seen_ms).collect();
        let recovered: Vec<bool> = rows.iter().map(|n| n.recovered).collect();
        let op = "copy notifications";
        self.client
            .execute(
                &self.pg.sql(
                    "INSERT INTO {s}.notifications (id, source, subject, subscription_name, created_ms, created_raw,
                                                    received_via, first_seen_ms, recovered, json)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                                          $7::text[], $8::int8[], $9::bool[], $10::text[])",
                ),
                &[
                    &col(|n| &n.id),
                    &col(|n| &n.source),
                    &col(|n| &n.subject),
                    &subs,
                    &created,
                    &col(|n| &n.created_raw),
                    &col(|n| &n.received_via),
                    &seen,
                    &recovered,
                    &col(|n| &n.json),
                ],
            )
            .await
            .map_err(self.fail(op))
    }

    /// Queues `rows` again, in their order, unclaimed.
    pub async fn outbox(&mut self, rows: &[PendingDelivery]) -> Result<u64, StoreError> {
        let sinks: Vec<&str> = rows.iter().map(|d| d.sink.as_str()).collect();
        let ids: Vec<&str> = rows.iter().map(|d| d.notification_id.as_str()).collect();
        let enqueued: Vec<i64> = rows.iter().map(|d| d.enqueued_ms).collect();
        let attempts: Vec<i32> = rows.iter().map(|d| i32::try_from(d.attempts).unwrap_or(i32::MAX)).collect();
        let due: Vec<i64> = rows.iter().map(|d| d.next_attempt_ms).collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|d| d.last_error.as_deref()).collect();
        self.client
            .execute(
                &self.pg.sql(
                    "INSERT INTO {s}.outbox (sink, notification_id, enqueued_ms, attempts, next_attempt_ms, last_error)
                     SELECT sink, id, enqueued, attempts, due, error
                     FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[], $5::int8[], $6::text[])
                          WITH ORDINALITY AS u(sink, id, enqueued, attempts, due, error, ord)
                     ORDER BY ord",
                ),
                &[&sinks, &ids, &enqueued, &attempts, &due, &errors],
            )
            .await
            .map_err(self.fail("copy the outbox"))
    }

    /// Stores `rows` as dead letters.
    pub async fn dead_letters(&mut self, rows: &[DeadLetter]) -> Result<u64, StoreError> {
        let sinks: Vec<&str> = rows.iter().map(|d| d.sink.as_str()).collect();
        let ids: Vec<&str> = rows.iter().map(|d| d.notification_id.as_str()).collect();
        let attempts: Vec<i32> = rows.iter().map(|d| i32::try_from(d.attempts).unwrap_or(i32::MAX)).collect();
        let first: Vec<i64> = rows.iter().map(|d| d.first_enqueued_ms).collect();
        let dead: Vec<i64> = rows.iter().map(|d| d.dead_ms).collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|d| d.last_error.as_deref()).collect();
        self.client
            .execute(
                &self.pg.sql(
                    "INSERT INTO {s}.dead_letters (sink, notification_id, attempts, first_enqueued_ms, dead_ms, last_error)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::int8[], $6::text[])",
                ),
                &[&sinks, &ids, &attempts, &first, &dead, &errors],
            )
            .await
            .map_err(self.fail("copy dead letters"))
    }

    /// Sets the watermark and the last audit and commits everything.
    pub async fn commit(self, watermark: Option<i64>, last_audit: Option<LastAudit>) -> Result<(), StoreError> {
        self.client
            .execute(&self.pg.sql("UPDATE {s}.poll SET watermark_ms = $1"), &[&watermark])
            .await
            .map_err(self.fail("copy the watermark"))?;
        if let Some(audit) = last_audit {
            let text = serde_json::to_string(&audit)
                .map_err(|e| StoreError::InvalidInput { op: "copy the last audit", detail: e.to_string() })?;
            self.client
                .execute(
                    &self.pg.sql(
                        "INSERT INTO {s}.meta (key, value) VALUES ('last_audit', $1)
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    ),
                    &[&text],
                )
                .await
                .map_err(self.fail("copy the last audit"))?;
        }
        self.run("commit the copy", "COMMIT").await
    }
}
