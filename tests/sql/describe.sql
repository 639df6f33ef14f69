-- Every catalog fact about the docchat extension's objects, one line each, sorted: what a user
-- sees (functions with their arguments, results and privileges; tables, columns, constraints,
-- indexes, policies; views, types, sequences, comments, what pg_dump keeps) and, as `body`
-- lines, a digest of every function body and view. Two databases whose lines are equal hold
-- the same docchat. Used by tests/tests/surface.rs (the pinned surface) and release.rs (an
-- upgraded install equals a fresh one).
WITH members AS (
    SELECT d.classid, d.objid
    FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'docchat'
      -- PostgreSQL 18 also records the row types of tables and views and every array type as
      -- members: implicit, so left out on every version.
      AND NOT (d.classid = 'pg_type'::regclass AND EXISTS (
          SELECT FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
          WHERE t.oid = d.objid AND (t.typcategory = 'A' OR c.relkind IN ('r', 'v', 'm', 'p', 'f'))))
),
funcs AS (
    SELECT p.* FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
),
rels AS (
    SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
),
types AS (
    SELECT t.* FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
),
lines(line) AS (
    SELECT format('function %s(%s) returns %s | %s %s%s parallel %s | config %s | acl %s | comment %s',
                  p.pronamespace::regnamespace || '.' || p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid),
                  l.lanname, CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
                  CASE WHEN p.prosecdef THEN ' security definer' ELSE '' END,
                  CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END,
                  coalesce(array_to_string(p.proconfig, ', '), '-'), coalesce(p.proacl::text, '-'),
                  coalesce(obj_description(p.oid, 'pg_proc'), '-'))
    FROM funcs p JOIN pg_language l ON l.oid = p.prolang
    UNION ALL
    SELECT format('function %s(%s) arguments %s', p.pronamespace::regnamespace || '.' || p.proname, pg_get_function_identity_arguments(p.oid),
                  pg_get_function_arguments(p.oid))
    FROM funcs p
    UNION ALL
    -- C functions are the library's symbols; SQL and plpgsql bodies are digested.
    SELECT format('body function %s(%s) %s', p.pronamespace::regnamespace || '.' || p.proname, pg_get_function_identity_arguments(p.oid),
                  CASE WHEN p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') THEN p.prosrc
                       ELSE md5(coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)) END)
    FROM funcs p
    UNION ALL
    SELECT format('relation %s %s | rls %s forced %s | options %s | acl %s | comment %s', c.oid::regclass,
                  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'S' THEN 'sequence'
                                 WHEN 'i' THEN 'index' WHEN 'm' THEN 'materialized view' ELSE c.relkind::text END,
                  c.relrowsecurity, c.relforcerowsecurity, coalesce(c.reloptions::text, '-'), coalesce(c.relacl::text, '-'),
                  coalesce(obj_description(c.oid, 'pg_class'), '-'))
    FROM rels c WHERE c.relkind <> 'i'
    UNION ALL
    SELECT format('column %s.%s %s %s %s%s%s | acl %s', c.oid::regclass, lpad(a.attnum::text, 2, '0'), a.attname,
                  format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                  CASE WHEN a.attgenerated = 's' THEN ' generated ' ELSE ' default ' END || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  '', coalesce(a.attacl::text, '-'))
    FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    WHERE c.relkind IN ('r', 'v')
    UNION ALL
    SELECT format('constraint %s %s %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
    FROM pg_constraint co JOIN rels c ON c.oid = co.conrelid
    WHERE co.contype <> 'n'  -- PostgreSQL 18's NOT NULL constraints: the column lines say it
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN rels c ON c.oid = i.indrelid
    UNION ALL
    SELECT format('policy %s %s %s %s to %s using %s check %s', po.polrelid::regclass, po.polname,
                  CASE WHEN po.polpermissive THEN 'permissive' ELSE 'restrictive' END, po.polcmd,
                  po.polroles::regrole[]::text, coalesce(pg_get_expr(po.polqual, po.polrelid), '-'),
                  coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '-'))
    FROM pg_policy po JOIN rels c ON c.oid = po.polrelid
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
    FROM pg_trigger t JOIN rels c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('body view %s %s', c.oid::regclass, md5(pg_get_viewdef(c.oid)))
    FROM rels c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('type %s %s', t.oid::regtype,
                  CASE t.typtype WHEN 'c' THEN (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                                FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0)
                                 WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
                                 ELSE t.typtype::text END)
    FROM types t
    UNION ALL
    SELECT format('schema %s | acl %s', n.nspname, coalesce(n.nspacl::text, '-'))
    FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
    UNION ALL
    SELECT format('dumped %s %s', c::regclass, coalesce(nullif(cond, ''), '(all rows)'))
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) u(c, cond)
    WHERE e.extname = 'docchat'
    UNION ALL
    SELECT format('member %s', pg_describe_object(m.classid, m.objid, 0)) FROM members m
)
SELECT line FROM lines ORDER BY line COLLATE "C";
