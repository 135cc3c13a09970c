\if :entered = 0
SELECT set_config('app.wall_proof', wall_bench.sign_stmt('00000000-0000-4000-8000-000000000001'), false);
\set entered 1
\endif
SELECT id,name,domain,created_at FROM companies ORDER BY id LIMIT 50;
