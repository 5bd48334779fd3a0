use super::*;

fn record(sessid: u64, uid: i64, name: &str) -> Session {
    let mut s = Session::init_session(sessid, "telnet", "127.0.0.1:5000");
    s.uid = Some(uid);
    s.uname = Some(name.into());
    s.logged_in = true;
    s.puid = Some(uid + 10);
    s
}

fn payload_of(b: &AmpBox) -> (i64, Vec<(Py, Py)>) {
    let raw = payload::unpack(b, "packed_data", 1 << 20).unwrap();
    match pickle::decode(&raw, &Limits::default()).unwrap() {
        Py::Tuple(items) => match (&items[0], &items[1]) {
            (Py::Int(sessid), Py::Dict(kwargs)) => (*sessid, kwargs.clone()),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn from_server(command: &str, sessid: u64, kwargs: Vec<(Py, Py)>) -> FromPeer {
    let b = packed_box(command, Some("a1"), sessid, kwargs);
    let incoming = decode_box(&b, 1 << 20);
    assert_eq!(incoming.ask.as_deref(), Some(&b"a1"[..]));
    incoming.what.unwrap()
}

fn operation(code: u8) -> (Py, Py) {
    (s("operation"), Py::Str(char::from(code).to_string()))
}

fn call(args: Vec<Py>, kwargs: Vec<(Py, Py)>) -> Py {
    Py::Tuple(vec![Py::Tuple(args), Py::Dict(kwargs)])
}

#[test]
fn output_keeps_the_server_s_order_text_then_prompt() {
    let kwargs = vec![
        (
            s("text"),
            call(
                vec![s("You see a room.")],
                vec![(s("options"), Py::Dict(vec![]))],
            ),
        ),
        (s("prompt"), call(vec![s("HP 10 > ")], vec![])),
    ];
    let FromPeer::Msg(ServerMsg::DataOut { sessid, commands }) =
        from_server("MsgServer2Portal", 7, kwargs)
    else {
        panic!()
    };
    assert_eq!(sessid, 7);
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["text", "prompt"]);
    assert_eq!(commands[0].first_str(), Some("You see a room."));
    assert!(commands[0].kwargs.contains_key("options"));
}

#[test]
fn a_python_pickled_server_box_is_read() {
    // python3 -c 'import pickle; print(list(pickle.dumps((1, {"operation":
    //   "\x04", "sessiondata": {"logged_in": True, "uid": 2}}), 5)))'
    let raw: &[u8] = &[
        128, 5, 149, 64, 0, 0, 0, 0, 0, 0, 0, 75, 1, 125, 148, 40, 140, 9, 111, 112, 101, 114, 97,
        116, 105, 111, 110, 148, 140, 1, 4, 148, 140, 11, 115, 101, 115, 115, 105, 111, 110, 100,
        97, 116, 97, 148, 125, 148, 40, 140, 9, 108, 111, 103, 103, 101, 100, 95, 105, 110, 148,
        136, 140, 3, 117, 105, 100, 148, 75, 2, 117, 117, 134, 148, 46,
    ];
    let mut b = AmpBox::command("AdminServer2Portal", Some("3"));
    payload::pack(&mut b, "packed_data", raw);
    let FromPeer::Login { sessid, data } = decode_box(&b, 1 << 20).what.unwrap() else {
        panic!()
    };
    assert_eq!(sessid, 1);
    let mut session = Session::init_session(1, "telnet", "10.0.0.9:4000");
    apply_sessiondata(&mut session, &data);
    assert!(session.logged_in);
    assert_eq!(session.uid, Some(2));
    assert_eq!(
        session.address, "10.0.0.9:4000",
        "a partial record leaves the rest"
    );
}

#[test]
fn admin_operations_map_to_link_messages() {
    let cases = [
        (op::SDISCONN, "SDISCONN"),
        (op::SDISCONNALL, "SDISCONNALL"),
        (op::SRELOAD, "SRELOAD"),
        (op::SRESET, "SRESET"),
        (op::SSHUTD, "SSHUTD"),
        (op::PSHUTD, "PSHUTD"),
    ];
    for (code, name) in cases {
        let kwargs = vec![operation(code), (s("reason"), s("bye"))];
        let FromPeer::Msg(msg) = from_server("AdminServer2Portal", 4, kwargs) else {
            panic!("{name}")
        };
        let ok = match code {
            op::SDISCONN => {
                msg == ServerMsg::Disconnect {
                    sessid: 4,
                    reason: "bye".into(),
                }
            }
            op::SDISCONNALL => {
                msg == ServerMsg::DisconnectAll {
                    reason: "bye".into(),
                }
            }
            op::SRELOAD => msg == ServerMsg::Reload,
            op::SRESET => msg == ServerMsg::Reset,
            op::SSHUTD => msg == ServerMsg::StopGame,
            _ => msg == ServerMsg::Shutdown,
        };
        assert!(ok, "{name}: {msg:?}");
    }
}

#[test]
fn psync_from_the_server_carries_its_pid_and_info() {
    let info = Py::Dict(vec![(s("servername"), s("g"))]);
    let kwargs = vec![
        operation(op::PSYNC),
        (s("spid"), Py::Int(42)),
        (s("info_dict"), info.clone()),
    ];
    let FromPeer::ServerHello { pid, info: got } = from_server("AdminServer2Portal", 0, kwargs)
    else {
        panic!()
    };
    assert_eq!(pid, Some(42));
    assert_eq!(got, info);
}

#[test]
fn ssync_lists_records_by_sessid_and_is_clean_unless_told() {
    let data = Py::Dict(vec![(s("puid"), Py::Int(3))]);
    let kwargs = vec![
        operation(op::SSYNC),
        (s("sessiondata"), Py::Dict(vec![(Py::Int(5), data.clone())])),
    ];
    let FromPeer::Sync { sessions, clean } = from_server("AdminServer2Portal", 0, kwargs) else {
        panic!()
    };
    assert_eq!(sessions, vec![(5, data.clone())]);
    assert!(clean);
    let kwargs = vec![
        operation(op::SSYNC),
        (s("sessiondata"), Py::Dict(vec![(Py::Int(5), data)])),
        (s("clean"), Py::Bool(false)),
    ];
    let FromPeer::Sync { clean, .. } = from_server("AdminServer2Portal", 0, kwargs) else {
        panic!()
    };
    assert!(!clean);
}

#[test]
fn unknown_commands_and_bad_payloads_are_reported_not_fatal() {
    let b = AmpBox::command("FunctionCall", Some("9"));
    assert!(matches!(
        decode_box(&b, 100).what,
        Ok(FromPeer::Unhandled { command }) if command == "FunctionCall"
    ));
    let mut b = AmpBox::command("MsgServer2Portal", Some("9"));
    b.insert("packed_data", b"junk");
    let incoming = decode_box(&b, 100);
    assert_eq!(incoming.ask.as_deref(), Some(&b"9"[..]));
    assert!(incoming.what.is_err());
    let b = packed_box("AdminServer2Portal", None, 0, vec![operation(99)]);
    assert!(decode_box(&b, 1 << 20).what.is_err());
}

#[test]
fn the_sync_reply_uses_evennia_s_keys_and_restart_modes() {
    for (mode, name) in [
        (StartMode::Reload, "reload"),
        (StartMode::Reset, "reset"),
        (StartMode::Start, "shutdown"),
        (StartMode::Crash, "shutdown"),
    ] {
        let msg = PortalMsg::Sync {
            mode,
            sessions: vec![record(1, 2, "alice")],
        };
        let boxes = encode_portal(&msg, 1.5);
        assert_eq!(boxes.len(), 1);
        assert_eq!(
            boxes[0].text("_command").as_deref(),
            Some("AdminPortal2Server")
        );
        let (sessid, kwargs) = payload_of(&boxes[0]);
        assert_eq!(sessid, 0);
        assert_eq!(get(&kwargs, "operation"), Some(&s("\x03")));
        assert_eq!(get(&kwargs, "server_restart_mode"), Some(&s(name)));
        assert_eq!(get(&kwargs, "portal_start_time"), Some(&Py::Float(1.5)));
        let Some(Py::Dict(all)) = get(&kwargs, "sessiondata") else {
            panic!()
        };
        assert_eq!(all[0].0, Py::Int(1), "keyed by the int sessid");
        let Py::Dict(one) = &all[0].1 else { panic!() };
        for key in [
            "protocol_key",
            "address",
            "suid",
            "sessid",
            "uid",
            "csessid",
            "uname",
            "logged_in",
            "puid",
            "conn_time",
            "cmd_last",
            "cmd_last_visible",
            "cmd_total",
            "protocol_flags",
            "server_data",
        ] {
            assert!(get(one, key).is_some(), "{key}");
        }
        assert_eq!(
            get(one, "address"),
            Some(&s("127.0.0.1")),
            "the IP, as Evennia's"
        );
        assert_eq!(get(one, "uid"), Some(&Py::Int(2)));
        let Some(Py::Dict(flags)) = get(one, "protocol_flags") else {
            panic!()
        };
        assert_eq!(
            get(flags, "SCREENWIDTH"),
            Some(&Py::Dict(vec![(Py::Int(0), Py::Int(78))])),
            "window sizes keep their int key"
        );
    }
}

#[test]
fn a_connection_sync_sends_only_what_the_portal_owns() {
    let boxes = encode_portal(
        &PortalMsg::ConnSync {
            session: record(3, 2, "alice"),
        },
        0.0,
    );
    let (sessid, kwargs) = payload_of(&boxes[0]);
    assert_eq!(sessid, 3);
    let Some(Py::Dict(data)) = get(&kwargs, "sessiondata") else {
        panic!()
    };
    assert!(get(data, "protocol_flags").is_some());
    for server_owned in ["uid", "puid", "logged_in", "uname", "cmd_total"] {
        assert!(get(data, server_owned).is_none(), "{server_owned}");
    }
}

#[test]
fn input_goes_one_command_per_box_as_evennia_s_portal_sends_it() {
    let msg = PortalMsg::DataIn {
        sessid: 2,
        commands: vec![Command::text("look"), Command::text("say hi")],
    };
    let boxes = encode_portal(&msg, 0.0);
    assert_eq!(boxes.len(), 2);
    assert!(boxes[0].get("_ask").is_none(), "input is not asked");
    let (sessid, kwargs) = payload_of(&boxes[1]);
    assert_eq!(sessid, 2);
    assert_eq!(
        kwargs,
        vec![(
            s("text"),
            Py::List(vec![Py::List(vec![s("say hi")]), Py::Dict(vec![])])
        )]
    );
}

#[test]
fn a_heartbeat_asks_with_its_seq_and_the_answer_is_a_pong() {
    let boxes = encode_portal(&PortalMsg::Ping { seq: 17 }, 0.0);
    assert_eq!(boxes[0].text("_ask").as_deref(), Some("17"));
    let (sessid, kwargs) = payload_of(&boxes[0]);
    assert_eq!(
        (sessid, kwargs.len()),
        (0, 0),
        "an empty message to no session"
    );
    let answer = decode_box(&AmpBox::answer(b"17"), 10);
    assert!(matches!(answer.what, Ok(FromPeer::Answer { ask }) if ask == "17"));
}

#[test]
fn what_the_portal_does_not_model_survives_the_round_trip_objects_included() {
    let object = Py::Reduce {
        callable: Box::new(Py::Global {
            module: "datetime".into(),
            name: "datetime".into(),
        }),
        args: Box::new(Py::Tuple(vec![Py::Bytes(vec![
            7, 234, 12, 2, 0, 0, 0, 0, 0, 0,
        ])])),
    };
    let server_data = Py::Dict(vec![(s("last_seen"), object)]);
    let data = Py::Dict(vec![
        (
            s("cmdset_storage_string"),
            s("commands.default_cmdsets.SessionCmdSet"),
        ),
        (s("server_data"), server_data.clone()),
        (s("suid"), s("ab12")),
        (s("puid"), Py::Int(9)),
    ]);
    let mut session = record(1, 2, "alice");
    apply_sessiondata(&mut session, &data);
    assert_eq!(session.puid, Some(9));
    let Py::Dict(back) = session_py(&session) else {
        panic!()
    };
    assert_eq!(get(&back, "server_data"), Some(&server_data));
    assert_eq!(get(&back, "suid"), Some(&s("ab12")));
    assert_eq!(
        get(&back, "cmdset_storage_string"),
        Some(&s("commands.default_cmdsets.SessionCmdSet"))
    );
    // A later partial record changes one extra and keeps the others.
    apply_sessiondata(&mut session, &Py::Dict(vec![(s("suid"), s("cd34"))]));
    let Py::Dict(back) = session_py(&session) else {
        panic!()
    };
    assert_eq!(get(&back, "suid"), Some(&s("cd34")));
    assert_eq!(get(&back, "server_data"), Some(&server_data));
}

#[test]
fn flags_from_the_server_merge_into_the_typed_fields() {
    let mut session = record(1, 2, "alice");
    let flags = Py::Dict(vec![
        (s("SCREENWIDTH"), Py::Dict(vec![(Py::Int(0), Py::Int(120))])),
        (s("ANSI"), Py::Bool(true)),
        (s("MY_FLAG"), Py::Int(3)),
    ]);
    apply_sessiondata(&mut session, &Py::Dict(vec![(s("protocol_flags"), flags)]));
    assert_eq!(session.protocol_flags.screenwidth, Some(120));
    assert_eq!(session.protocol_flags.ansi, Some(true));
    assert_eq!(session.protocol_flags.get("MY_FLAG"), Some(Value::Int(3)));
    assert_eq!(
        session.protocol_flags.encoding.as_deref(),
        Some("utf-8"),
        "merged, not replaced"
    );
}

#[test]
fn addresses_lose_their_port() {
    assert_eq!(host_of("127.0.0.1:4000"), "127.0.0.1");
    assert_eq!(host_of("[::1]:4000"), "::1");
    assert_eq!(host_of("somewhere"), "somewhere");
}

#[test]
fn sconn_for_evennias_irc_bot_factory_asks_for_an_irc_session() {
    // What Evennia's IRCBot.start sends (accounts/bots.py): the factory
    // path and its config dict, the port as a string.
    let config = Py::Dict(vec![
        (s("uid"), Py::Int(5)),
        (s("botname"), s("evbot")),
        (s("channel"), s("#evennia")),
        (s("network"), s("irc.example.org")),
        (s("port"), s("6667")),
        (s("ssl"), Py::Bool(false)),
    ]);
    let kwargs = vec![
        operation(op::SCONN),
        (
            s("protocol_path"),
            s("evennia.server.portal.irc.IRCBotFactory"),
        ),
        (s("config"), config),
    ];
    let FromPeer::Msg(ServerMsg::ServerConnect {
        protocol_key,
        config,
    }) = from_server("AdminServer2Portal", 0, kwargs)
    else {
        panic!("not a ServerConnect")
    };
    assert_eq!(protocol_key, "irc");
    assert_eq!(config.get("port").and_then(Value::as_str), Some("6667"));
    assert_eq!(config.get("uid").and_then(Value::as_int), Some(5));
    // Any other factory path is passed on, to be refused by name.
    assert_eq!(
        protocol_key_of("evennia.server.portal.rss.RSSBotFactory"),
        "evennia.server.portal.rss.RSSBotFactory"
    );
}
