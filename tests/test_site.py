"""What a person opening the app's address sees."""


def test_the_front_door_leads_to_the_api_docs_and_they_render(client, db):
    response = client.get("/", follow=True)
    assert response.redirect_chain == [("/api/docs/", 302)]
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    # No network at run time: the page's scripts come from our own static files, not a CDN.
    assert "cdn.jsdelivr" not in page and "/static/drf_spectacular_sidecar/" in page


def test_the_health_check_answers(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
