def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_both_services_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["postgres"] == "ok"
    assert body["redis"] == "ok"
