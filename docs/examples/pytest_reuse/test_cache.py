def test_starts_empty(ask):
    assert ask("DBSIZE") == b":0\r\n"
    assert ask("SET visits 1") == b"+OK\r\n"
