//! A console user over plain HTTP: signs in with an API key as a browser
//! does (the sign-in form's CSRF cookie and field, then the session
//! cookie), reads pages and posts their forms.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

#[derive(Clone)]
pub struct Console {
    pub api: String,
    http: reqwest::Client,
    /// `mw_console=<id>`.
    pub cookie: String,
    /// The session's form token, read from a page.
    pub csrf: String,
}

/// What a request answered: status, `Location` (redirects) and body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name=` in the response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        })
}

/// The first hidden `csrf` field's value in `html`.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

impl Console {
    /// Signs in with `key`; `Err` is the refusal (status and `Location`).
    pub async fn sign_in(api: &str, key: &str) -> Result<Console, (u16, Option<String>)> {
        let http = client();
        let form = http.get(format!("{api}/console/login")).send().await.unwrap();
        let login_cookie = set_cookie(&form, "mw_console_login").expect("the sign-in form sets its cookie");
        let token = csrf_of(&form.text().await.unwrap()).expect("the sign-in form has a token");
        let answer = http
            .post(format!("{api}/console/login"))
            .header(COOKIE, format!("mw_console_login={login_cookie}"))
            .form(&[("api_key", key), ("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let location = answer
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(session) = set_cookie(&answer, "mw_console").filter(|s| !s.is_empty()) else {
            return Err((status, location));
        };
        let mut console = Console {
            api: api.to_string(),
            http,
            cookie: format!("mw_console={session}"),
            csrf: String::new(),
        };
        let runs = console.get("/console").await;
        console.csrf = csrf_of(&runs.body).expect("a signed-in page has the session's token");
        Ok(console)
    }

    async fn answer(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// This session, against another API process (on the same database).
    pub fn at(&self, api: &str) -> Console {
        Console {
            api: api.to_string(),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        Console::answer(response).await
    }

    /// Posts `form` with the session's CSRF token added.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &self.csrf));
        self.post_exactly(path, &fields).await
    }

    /// Posts `form` as it is (no token added).
    pub async fn post_exactly(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        Console::answer(response).await
    }
}
