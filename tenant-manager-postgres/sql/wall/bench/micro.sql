-- per-call costs in one session (run as the app login in the bench database: psql -f micro.sql)
-- µs per call, one session, as the app login (wall_bench.sign stands in for the app's HMAC).
DO $$
DECLARE t0 timestamptz; n int := 3000; i int; a uuid := '00000000-0000-4000-8000-000000000001'; x text; ok boolean; c int;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP x := wall_bench.sign(a, i); END LOOP;
  RAISE NOTICE 'sign (app side stand-in): % us', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP ok := wall.enter(a, i, 1, wall_bench.sign(a, i)); END LOOP;
  RAISE NOTICE 'sign + enter: % us (last ok=%)', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1), ok;
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP ok := wall.enter(a, i, 1, 'bad'); END LOOP;
  RAISE NOTICE 'enter with a bad proof (no HMAC match): % us', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
  PERFORM wall.enter(a, n + 1, 1, wall_bench.sign(a, n + 1));
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM shared.companies; END LOOP;
  RAISE NOTICE 'walled count(*) (50 rows) per statement, same transaction as %x2 enter() (a HOT chain of that many versions): % us', n, round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM bench_a.companies; END LOOP;
  RAISE NOTICE 'unwalled count(*) (50 rows) per statement: % us', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
  PERFORM set_config('app.tenant_id', a::text, false);
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM bench_b.companies; END LOOP;
  RAISE NOTICE 'plain-setting RLS count(*) (50 rows) per statement: % us', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
  PERFORM set_config('app.wall_proof', wall_bench.sign_stmt(a), false);
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM bench_d.companies; END LOOP;
  RAISE NOTICE 'per-statement HMAC RLS count(*) (50 rows) per statement: % us (rows %)', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1), c;
END $$;
-- A new transaction after the loop above committed (its versions prunable): the normal case.
SELECT wall.enter('00000000-0000-4000-8000-000000000001', 100000, 1, wall_bench.sign('00000000-0000-4000-8000-000000000001', 100000));
SELECT count(*) FROM shared.companies;
DO $$
DECLARE t0 timestamptz; n int := 3000; i int; c int;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM shared.companies; END LOOP;
  RAISE NOTICE 'walled count(*) (50 rows) per statement, fresh transaction: % us (rows %)', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1), c;
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM t_01.companies; END LOOP;
  RAISE NOTICE 'walled schema tenant count(*) (50 rows) per statement, fresh transaction: % us (rows %)', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1), c;
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP SELECT count(*) INTO c FROM bench_a.companies; END LOOP;
  RAISE NOTICE 'unwalled count(*) again: % us', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 1);
END $$;
