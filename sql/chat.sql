-- Chat: the context an LLM needs to answer from the caller's documents, with numbered citations.

-- The conversation so far: a JSON array of {"role": "user" | "assistant", "content": "..."}.
CREATE FUNCTION docchat.check_history(history jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF history IS NULL OR jsonb_typeof(history) <> 'array' OR EXISTS (
        SELECT FROM jsonb_array_elements(history) t
        WHERE jsonb_typeof(t) <> 'object' OR t ->> 'role' IS NULL OR t ->> 'role' NOT IN ('user', 'assistant')
           OR jsonb_typeof(t -> 'content') IS DISTINCT FROM 'string') THEN
        RAISE EXCEPTION 'docchat: history must be a JSON array of {"role": "user" | "assistant", "content": "..."} objects'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass the earlier turns, oldest first, e.g. [{"role": "user", "content": "What is X?"}, {"role": "assistant", "content": "X is ..."}]';
    END IF;
END
$$;

-- Retrieves 2k chunks with the message and, to resolve follow-ups ("and in 2023?"), the previous
-- user turn; merges hits that overlap or touch in their document (neighbouring chunks share text)
-- into one passage scored by its best hit; keeps up to k passages, best first, while their model
-- word-pieces fit max_context_tokens; and numbers them [1], [2], ... for the prompt to cite.
CREATE FUNCTION docchat_chat_context(message text, history jsonb DEFAULT '[]', k integer DEFAULT 8,
                                     max_context_tokens integer DEFAULT 2000)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    previous text;
    query text;
    hit record;
    passages jsonb := '[]';
    p jsonb;
    kept jsonb := '[]';
    used integer := 0;
    n_hits integer := 0;
    context_text text := '';
    conversation text := '';
    context_block text;
    system_prompt text;
    prompt text;
BEGIN
    IF message IS NULL OR btrim(message) = '' THEN
        RAISE EXCEPTION 'docchat_chat_context: message is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'pass the user''s question';
    END IF;
    PERFORM docchat.check_history(history);
    IF k IS NULL OR k < 1 OR k > 100 THEN
        RAISE EXCEPTION 'docchat_chat_context: k must be between 1 and 100, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_context_tokens IS NULL OR max_context_tokens < 1 THEN
        RAISE EXCEPTION 'docchat_chat_context: max_context_tokens must be positive, got %', coalesce(max_context_tokens::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT t ->> 'content' INTO previous
    FROM jsonb_array_elements(history) WITH ORDINALITY h(t, n)
    WHERE t ->> 'role' = 'user' ORDER BY n DESC LIMIT 1;
    query := concat_ws(E'\n', previous, message);

    -- Hits in document order; a hit that overlaps or touches the previous one extends it.
    FOR hit IN
        SELECT s.document_id, s.filename, s.page, s.score, c.content, c.char_start, c.char_end, c.n_tokens
        FROM @extschema@.docchat_search(query, k * 2, 0.3) s
        JOIN docchat.chunks c ON c.document_id = s.document_id AND c.chunk_index = s.chunk_index
        ORDER BY s.document_id, c.char_start, c.char_end
    LOOP
        n_hits := n_hits + 1;
        IF p IS NOT NULL AND (p ->> 'document_id')::uuid = hit.document_id AND hit.char_start <= (p ->> 'char_end')::int THEN
            IF hit.char_end > (p ->> 'char_end')::int THEN
                p := p || jsonb_build_object(
                    'content', (p ->> 'content') || substr(hit.content, (p ->> 'char_end')::int - hit.char_start + 1),
                    'char_end', hit.char_end);
            END IF;
            p := p || jsonb_build_object('score', greatest((p ->> 'score')::float8, hit.score),
                                         'tokens', (p ->> 'tokens')::int + hit.n_tokens);
        ELSE
            IF p IS NOT NULL THEN passages := passages || p; END IF;
            p := jsonb_build_object('document_id', hit.document_id, 'filename', hit.filename, 'page', hit.page,
                                    'score', hit.score, 'content', hit.content, 'char_end', hit.char_end,
                                    'tokens', hit.n_tokens);
        END IF;
    END LOOP;
    IF p IS NOT NULL THEN passages := passages || p; END IF;

    -- The token budget (word-pieces of the embedding model, counting a merged overlap twice: an
    -- upper bound); a passage that does not fit is skipped, a smaller later one may still fit.
    FOR p IN SELECT e FROM jsonb_array_elements(passages) e ORDER BY (e ->> 'score')::float8 DESC LOOP
        IF used + (p ->> 'tokens')::int <= max_context_tokens AND jsonb_array_length(kept) < k THEN
            used := used + (p ->> 'tokens')::int;
            kept := kept || jsonb_build_object(
                'n', jsonb_array_length(kept) + 1, 'document_id', p -> 'document_id', 'filename', p -> 'filename',
                'page', p -> 'page', 'content', p -> 'content', 'score', p -> 'score');
            context_text := context_text || format(E'[%s] %s%s\n%s\n\n', jsonb_array_length(kept),
                coalesce(p ->> 'filename', 'untitled'), coalesce(', page ' || (p ->> 'page'), ''), p ->> 'content');
        END IF;
    END LOOP;

    SELECT coalesce(string_agg(initcap(t ->> 'role') || ': ' || (t ->> 'content'), E'\n' ORDER BY n), '') INTO conversation
    FROM jsonb_array_elements(history) WITH ORDINALITY h(t, n);
    system_prompt := 'You answer questions about the user''s documents. Use only the numbered context passages. '
        'Cite the passages you use as [1], [2], ... right after the statement they support. '
        'If the passages do not contain the answer, say that the documents do not say.';
    context_block := CASE WHEN jsonb_array_length(kept) = 0 THEN E'Context: no passage of the documents matches the question.\n\n'
                          ELSE E'Context:\n\n' || context_text END;
    prompt := context_block
        || CASE WHEN conversation <> '' THEN E'Conversation so far:\n' || conversation || E'\n\n' ELSE '' END
        || 'Question: ' || message;
    RETURN jsonb_build_object(
        'system', system_prompt,
        'prompt', prompt,
        'messages', jsonb_build_array(jsonb_build_object('role', 'system', 'content', system_prompt))
                    -- only role and content of each turn: nothing else the caller adds reaches the endpoint
                    || (SELECT coalesce(jsonb_agg(jsonb_build_object('role', t ->> 'role', 'content', t ->> 'content') ORDER BY n), '[]')
                        FROM jsonb_array_elements(history) WITH ORDINALITY h(t, n))
                    || jsonb_build_array(jsonb_build_object('role', 'user', 'content', context_block || 'Question: ' || message)),
        'context', kept,
        'summary', format('%s passage(s) from %s document(s), %s of %s context tokens',
                          jsonb_array_length(kept),
                          (SELECT count(DISTINCT e -> 'document_id') FROM jsonb_array_elements(kept) e),
                          used, max_context_tokens),
        'metadata', jsonb_build_object('retrieval_query', query, 'k', k, 'max_context_tokens', max_context_tokens,
                                       'context_tokens', used, 'hits', n_hits, 'passages', jsonb_array_length(passages),
                                       'history_turns', jsonb_array_length(history)));
END
$$;
COMMENT ON FUNCTION docchat_chat_context(text, jsonb, integer, integer) IS
    'The prompt, system message and numbered context passages for an LLM to answer the message from the caller''s documents';
