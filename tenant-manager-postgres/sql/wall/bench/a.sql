SELECT id,name,domain,created_at FROM companies ORDER BY id LIMIT 50;
