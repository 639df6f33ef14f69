-- Background ingest: docchat_ingest_async queues a document here and ingest workers run it.
-- The queue is a table, so a restart loses nothing. A worker owns a job while its process
-- lives (worker_pid, started_at: docchat.job_is_running); when it dies (killed, crashed, server
-- restarted) the next worker runs the job again from the start. Chunks are written in the job's
-- last transaction only, so a document is never left with some of its chunks.
CREATE TABLE docchat.ingest_jobs (
    document_id  uuid PRIMARY KEY REFERENCES docchat.documents (id) ON DELETE CASCADE,
    owner        text NOT NULL DEFAULT docchat.current_owner(),
    content      bytea,                        -- dropped once the document is ready
    options      jsonb NOT NULL DEFAULT '{}',  -- filename, mime_type, metadata, chunk sizes, password
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    retry_delay  interval NOT NULL,            -- before attempt n+1: retry_delay * 4^(n-1)
    last_error   text,
    run_after    timestamptz NOT NULL DEFAULT now(),
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,                  -- of the current (or last) attempt
    phase_started_at timestamptz,              -- of its current status (parsing, embedding)
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,                  -- ready or failed for good
    pages_done   integer NOT NULL DEFAULT 0,
    pages_total  integer,
    chunks_done  integer NOT NULL DEFAULT 0,
    chunks_total integer,
    chunks_cached integer NOT NULL DEFAULT 0,   -- embeddings reused from the owner's identical chunks
    worker_pid   integer
);
SELECT pg_catalog.pg_extension_config_dump('docchat.ingest_jobs', '');
CREATE INDEX ingest_jobs_pending_idx ON docchat.ingest_jobs (run_after, enqueued_at) WHERE finished_at IS NULL;
CREATE INDEX ingest_jobs_finished_idx ON docchat.ingest_jobs (finished_at);  -- the claim's recent jobs
ALTER TABLE docchat.ingest_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.ingest_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY ingest_jobs_owner ON docchat.ingest_jobs
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));

-- Every status change is announced at commit to the document's owner alone: on a channel
-- named by a keyed hash of the owner (docchat_ingest_channel() tells the caller its name), so
-- nobody can listen to another owner's document ids. The key is random per install and no
-- user can read it.
CREATE TABLE docchat.channel_key (key bytea NOT NULL);
INSERT INTO docchat.channel_key
SELECT sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8'));

CREATE FUNCTION docchat.ingest_channel(owner text) RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'docchat_ingest_' || left(encode(sha256(k.key || convert_to(owner, 'UTF8')), 'hex'), 32) FROM docchat.channel_key k
$$;

-- The caller's channel: LISTEN to it for '<document id>:<status>' as each change commits.
CREATE FUNCTION docchat_ingest_channel() RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT docchat.ingest_channel(docchat.current_owner()) $$;
COMMENT ON FUNCTION docchat_ingest_channel() IS
    'The notification channel of the caller''s documents: LISTEN to it for ''<id>:<status>'' on every status change';

-- The ingest launcher and this database's workers, counted with definer rights: a plain role
-- sees no backend_type of other roles' processes in pg_stat_activity (it would count 0).
CREATE FUNCTION docchat.ingest_workers_running() RETURNS jsonb
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'launcher_running', EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'docchat ingest launcher'),
        'workers_here', (SELECT count(*) FROM pg_stat_activity
                         WHERE backend_type = 'docchat ingest worker' AND datname = current_database()))
$$;

CREATE FUNCTION docchat.notify_status() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify(docchat.ingest_channel(NEW.owner), NEW.id::text || ':' || NEW.status);
    RETURN NULL;
END
$$;
CREATE TRIGGER documents_status_inserted AFTER INSERT ON docchat.documents
    FOR EACH ROW EXECUTE FUNCTION docchat.notify_status();
CREATE TRIGGER documents_status_changed AFTER UPDATE OF status ON docchat.documents
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION docchat.notify_status();

-- The caller's queued and recent jobs. eta: time left, from the pace of the current phase.
CREATE VIEW docchat.ingest_progress WITH (security_invoker = true) AS
SELECT d.id AS document_id, d.filename, d.status, j.attempts, j.max_attempts, j.last_error,
       j.pages_done, j.pages_total, j.chunks_done, j.chunks_total, j.chunks_cached,
       j.enqueued_at, j.started_at, j.updated_at, j.finished_at,
       CASE WHEN d.status = 'embedding' AND j.chunks_done > 0 AND j.chunks_total >= j.chunks_done
            THEN (now() - j.phase_started_at) * ((j.chunks_total - j.chunks_done)::float8 / j.chunks_done)
       END AS eta
FROM docchat.ingest_jobs j JOIN docchat.documents d ON d.id = j.document_id;

-- Whether a live ingest worker is running the job: the process that claimed it still exists
-- (a process with its pid started after the claim is another one). Nothing here is a lock a
-- user could take: a worker that dies (killed, crashed, server restarted) simply stops being one.
CREATE FUNCTION docchat.job_is_running(worker_pid integer, started_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT worker_pid IS NOT NULL AND EXISTS (
        SELECT FROM pg_stat_activity a
        WHERE a.pid = worker_pid AND a.backend_type = 'docchat ingest worker' AND a.backend_start <= started_at)
$$;

-- For ingest workers: the next due job that no live worker runs, marked parsing. Owners take
-- turns (the one with the fewest running jobs first, then the oldest due job); the row lock
-- (FOR UPDATE SKIP LOCKED) keeps two workers off one job, and users can lock no job row.
-- A job still pending after its last attempt lost its worker: it fails instead.
CREATE FUNCTION docchat.claim_ingest_job() RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
BEGIN
    LOOP
        -- Owners take turns: fewest jobs running first, then the owner served least recently, so
        -- one owner's flood waits behind everyone else's next job even with a single worker.
        SELECT q.document_id, q.attempts, q.max_attempts INTO j
        FROM docchat.ingest_jobs q
        LEFT JOIN (SELECT r.owner,
                          count(*) FILTER (WHERE r.finished_at IS NULL AND r.worker_pid IS NOT NULL) AS running,
                          max(r.started_at) AS served
                   FROM docchat.ingest_jobs r
                   -- pending and recent jobs tell who was served last without reading all history
                   WHERE r.finished_at IS NULL OR r.finished_at > now() - interval '1 hour'
                   GROUP BY r.owner) s ON s.owner = q.owner
        WHERE q.finished_at IS NULL AND q.run_after <= now()
          AND NOT docchat.job_is_running(q.worker_pid, q.started_at)
          -- a job runs only for its document's owner: nobody else's bytes go into a document
          AND EXISTS (SELECT FROM docchat.documents d WHERE d.id = q.document_id AND d.owner = q.owner)
        ORDER BY s.running, s.served NULLS FIRST, q.run_after, q.enqueued_at
        FOR UPDATE OF q SKIP LOCKED
        LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF j.attempts >= j.max_attempts THEN
            PERFORM docchat.fail_ingest_job(j.document_id,
                format('the ingest worker stopped during attempt %s of %s (killed, crashed or the server restarted)', j.attempts, j.max_attempts),
                true);
            CONTINUE;
        END IF;
        UPDATE docchat.ingest_jobs SET attempts = attempts + 1, started_at = now(), phase_started_at = now(),
               updated_at = now(), worker_pid = pg_backend_pid(), pages_done = 0, pages_total = NULL,
               chunks_done = 0, chunks_total = NULL
        WHERE document_id = j.document_id;
        UPDATE docchat.documents SET status = 'parsing' WHERE id = j.document_id;
        RETURN j.document_id;
    END LOOP;
END
$$;

-- A failed attempt: queued again after the backoff, or failed for good when the error is the
-- document's own (permanent) or the attempts are used up.
CREATE FUNCTION docchat.fail_ingest_job(id uuid, error text, permanent boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done boolean;
BEGIN
    UPDATE docchat.ingest_jobs j SET last_error = error, updated_at = now(), worker_pid = NULL,
           finished_at = CASE WHEN permanent OR j.attempts >= j.max_attempts THEN now() END,
           run_after = now() + j.retry_delay * power(4, greatest(j.attempts - 1, 0)),
           options = CASE WHEN permanent OR j.attempts >= j.max_attempts THEN j.options - 'password' ELSE j.options END
    WHERE j.document_id = id
    RETURNING j.finished_at IS NOT NULL INTO done;
    UPDATE docchat.documents SET status = CASE WHEN done THEN 'failed' ELSE 'queued' END WHERE documents.id = fail_ingest_job.id;
END
$$;

-- For the async path and docchat.stats: jobs not yet finished in this database.
CREATE FUNCTION docchat.pending_jobs() RETURNS bigint
LANGUAGE sql STABLE
AS $$
    SELECT count(*) FROM docchat.ingest_jobs q
    WHERE q.finished_at IS NULL AND EXISTS (SELECT FROM docchat.documents d WHERE d.id = q.document_id AND d.owner = q.owner)
$$;

-- The caller's figures (a superuser's: everyone's): documents by status, chunks, the queue,
-- chunks embedded per second over the last minute, search latency over the last hour.
CREATE VIEW docchat.stats WITH (security_invoker = true) AS
SELECT
    (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
        (SELECT status, count(*) AS n FROM docchat.documents GROUP BY status) s) AS documents_by_status,
    (SELECT count(*) FROM docchat.chunks) AS chunks,
    (SELECT count(*) FROM docchat.ingest_jobs WHERE finished_at IS NULL) AS queue_depth,
    (SELECT count(*) FROM docchat.ingest_jobs j JOIN docchat.documents d ON d.id = j.document_id
      WHERE d.status = 'failed') AS failed_jobs,
    (SELECT now() - min(enqueued_at) FROM docchat.ingest_jobs WHERE finished_at IS NULL) AS oldest_pending_age,
    (SELECT round(coalesce(sum(n_chunks), 0) / 60.0, 2) FROM docchat.documents
      WHERE ingested_at > now() - interval '1 minute') AS embeddings_per_second,
    (SELECT count(*) FROM docchat.searches WHERE created_at > now() - interval '1 hour') AS searches_last_hour,
    (SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration)))::numeric * 1000, 2)
       FROM docchat.searches WHERE created_at > now() - interval '1 hour') AS search_p50_ms,
    (SELECT round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM duration)))::numeric * 1000, 2)
       FROM docchat.searches WHERE created_at > now() - interval '1 hour') AS search_p95_ms;
