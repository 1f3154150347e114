//! The web app's sessions over real HTTP: sign-in, wrong passwords, the limit on failed
//! attempts, CSRF on state-changing requests, sign-out, and error pages.

use reqwest::{StatusCode, redirect};

use crate::support::Server;

fn no_redirects() -> reqwest::Client {
    client_from([127, 0, 0, 1].into())
}

/// A client whose connections come from `local` (any address of 127.0.0.0/8 is this machine).
fn client_from(local: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

/// Signs in; returns the session cookie (`quorum_session=…`).
pub(crate) async fn sign_in(
    server: &Server,
    name: &str,
    password: &str,
) -> Result<String, (StatusCode, String)> {
    sign_in_from(server, [127, 0, 0, 1].into(), name, password).await
}

/// Signs in from the client address `local`.
pub(crate) async fn sign_in_from(
    server: &Server,
    local: std::net::IpAddr,
    name: &str,
    password: &str,
) -> Result<String, (StatusCode, String)> {
    let no_redirects = || client_from(local);
    // The form comes with its token, in a cookie and in a hidden field.
    let form = no_redirects()
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let login_cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = form.text().await.unwrap();
    let token = page
        .split("name=\"login_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let response = no_redirects()
        .post(format!("{}/login", server.base))
        .header("cookie", login_cookie)
        .form(&[
            ("name", name),
            ("password", password),
            ("login_csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string());
    match (status, cookie) {
        (StatusCode::SEE_OTHER, Some(cookie)) => {
            let set = response.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Lax"),
                "{set}"
            );
            Ok(cookie)
        }
        (status, _) => Err((status, response.text().await.unwrap())),
    }
}

pub(crate) async fn get(server: &Server, cookie: &str, path: &str) -> (StatusCode, String) {
    let response = no_redirects()
        .get(format!("{}{path}", server.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

pub(crate) fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sessions_csrf_sign_out_and_the_limit_on_failed_sign_ins() {
    let server = Server::start().await;
    let p = server.project(crate::support::label_schema(), 1).await;
    let _ = server.rater("ann", p, "annotator", &[]).await;

    // Pages need a session.
    let response = no_redirects()
        .get(format!("{}/home", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");

    // A sign-in posted from elsewhere (without the form's token) is refused.
    let forged = no_redirects()
        .post(format!("{}/login", server.base))
        .form(&[("name", "ann"), ("password", "password123")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let (status, page) = sign_in(&server, "ann", "wrong").await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong name or password."), "{page}");

    let cookie = sign_in(&server, "ann", "password123").await.unwrap();
    let (status, home) = get(&server, &cookie, "/home").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        home.contains("/projects/") && home.contains("annotator"),
        "{home}"
    );
    let csrf = csrf_of(&home);

    // The API accepts the cookie, but a state-changing request needs the CSRF token too.
    let next = |token: Option<&str>| {
        let mut request = no_redirects()
            .post(format!("{}/api/v1/projects/{p}/next", server.base))
            .header("cookie", &cookie);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send()
    };
    assert_eq!(next(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        next(Some("forged")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        next(Some(&csrf)).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );

    // A rater on a manager page, and unknown pages, get error pages that leak nothing.
    let (status, page) = get(&server, &cookie, &format!("/projects/{p}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("Not allowed") && !page.contains("Forbidden("),
        "{page}"
    );
    let (status, page) = get(&server, &cookie, "/projects/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let (status, page) = get(&server, &cookie, "/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("<html"), "an HTML page: {page}");

    // Signing out needs the form's token, and ends the session.
    let logout = |token: &str| {
        no_redirects()
            .post(format!("{}/logout", server.base))
            .header("cookie", &cookie)
            .form(&[("csrf", token)])
            .send()
    };
    assert_eq!(
        logout("forged").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(logout(&csrf).await.unwrap().status(), StatusCode::SEE_OTHER);
    let (status, _) = get(&server, &cookie, "/home").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );

    // Five failures lock the name for a while, even with the right password.
    for _ in 0..5 {
        assert!(sign_in(&server, "ann", "nope").await.is_err());
    }
    let (status, page) = sign_in(&server, "Ann", "password123").await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed attempts"), "{page}");
}
