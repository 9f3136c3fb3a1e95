-- Demo sales reps for `make run`. Safe to load twice.
INSERT INTO reps (id, name, team, manager, skills, regions, grades, capacity, weight, ignore_shift)
VALUES
  ('li.ming',   '李明', 'east',  NULL,      '{}',                    '{}',              '{}',        50, 1, true),
  ('wang.fang', '王芳', 'east',  'li.ming', '{medical,manufacturing}', '{east,shanghai}', '{A,B}',     30, 2, true),
  ('zhang.wei', '张伟', 'east',  'li.ming', '{software,education}',  '{east,north}',    '{}',        30, 1, true),
  ('chen.jing', '陈静', 'south', 'li.ming', '{}',                    '{south}',         '{B,C,D}',   40, 1, true)
ON CONFLICT (id) DO NOTHING;
