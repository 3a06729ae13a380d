//! Access control through the real server: sign-in safety (throttling, reloads, logs) and
//! the startup line of an open server. The per-route matrix lives in the http crate's
//! tests; real clients in `auth_clients`.

use crate::common::{Server, USERS, client, password};

const AUTH: &str = "  admins: [admin]\n  rules:\n    - spaces: [\"team-*\"]\n      users: {alice: write, bob: read}\n  faileddelay: 1ms\n";

#[test]
fn users_of_the_htpasswd_file_sign_in_and_others_do_not() {
    let server = Server::start_with_auth(AUTH, &[]);
    let spaces = server.api("/spaces");
    assert_eq!(client().get(&spaces).send().unwrap().status(), 200, "anonymous callers list what they may read");
    for (user, password) in USERS {
        let status = client().get(&spaces).basic_auth(user, Some(password)).send().unwrap().status();
        assert_eq!(status, 200, "{user}");
    }
    let wrong = client().get(&spaces).basic_auth("alice", Some("nope")).send().unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
    let created = client().post(server.api("/spaces?space=team-a")).basic_auth("admin", Some(password("admin"))).send();
    assert_eq!(created.unwrap().status(), 201);
    let by_alice =
        client().post(server.api("/spaces?space=team-b")).basic_auth("alice", Some(password("alice"))).send();
    assert_eq!(by_alice.unwrap().status(), 403, "write does not create spaces");
}
