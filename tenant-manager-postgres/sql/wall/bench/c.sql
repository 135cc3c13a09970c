\if :entered = 0
SELECT wall.enter('00000000-0000-4000-8000-000000000001', 1, 1, wall_bench.sign('00000000-0000-4000-8000-000000000001', 1));
\set entered 1
\endif
SELECT id,name,domain,created_at FROM companies ORDER BY id LIMIT 50;
