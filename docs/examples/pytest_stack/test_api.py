import urllib.request


def test_api_answers(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api.port}/") as response:
        assert response.status == 200


def test_its_dependency_is_up(api):
    url = f"http://127.0.0.1:{api.ports['files']}/seeded"
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"yes"
