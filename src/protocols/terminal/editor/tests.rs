use super::*;
use proptest::prelude::*;

/// A one-line terminal: what the echo would show. Knows exactly the
/// sequences the editor writes (BS, CSI n D/C, CSI K, CR LF, BEL).
#[derive(Default)]
struct Screen {
    cells: Vec<char>,
    cursor: usize,
    /// Lines scrolled off by CR LF.
    done: Vec<String>,
}

impl Screen {
    fn feed(&mut self, bytes: &[u8]) {
        let text = String::from_utf8(bytes.to_vec()).expect("echo is UTF-8");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{8}' => self.cursor = self.cursor.saturating_sub(1),
                '\u{7}' => {}
                '\r' => self.cursor = 0,
                '\n' => {
                    self.done.push(self.cells.iter().collect());
                    self.cells.clear();
                    self.cursor = 0;
                }
                '\u{1b}' => {
                    assert_eq!(chars.next(), Some('['));
                    let mut n = String::new();
                    while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                        n.push(d);
                    }
                    let n: usize = n.parse().unwrap_or(1);
                    match chars.next() {
                        Some('D') => self.cursor = self.cursor.saturating_sub(n),
                        Some('C') => self.cursor += n,
                        Some('K') => self.cells.truncate(self.cursor),
                        other => panic!("unexpected CSI final {other:?}"),
                    }
                }
                c => {
                    while self.cells.len() < self.cursor {
                        self.cells.push(' ');
                    }
                    if self.cursor < self.cells.len() {
                        self.cells[self.cursor] = c;
                    } else {
                        self.cells.push(c);
                    }
                    self.cursor += 1;
                }
            }
        }
    }

    fn line(&self) -> String {
        self.cells.iter().collect::<String>().trim_end().to_owned()
    }
}

fn type_in(editor: &mut LineEditor, screen: &mut Screen, bytes: &[u8]) -> Vec<Edit> {
    let mut echo = Vec::new();
    let mut edits = Vec::new();
    editor.input(bytes, &mut echo, &mut edits);
    screen.feed(&echo);
    edits
}

fn editor() -> (LineEditor, Screen) {
    (LineEditor::new(80), Screen::default())
}

fn lines(edits: &[Edit]) -> Vec<&str> {
    edits
        .iter()
        .filter_map(|e| match e {
            Edit::Line(l) => Some(l.as_str()),
            Edit::Quit => None,
        })
        .collect()
}

#[test]
fn typed_text_is_echoed_and_sent_on_enter() {
    let (mut e, mut s) = editor();
    assert!(type_in(&mut e, &mut s, b"look").is_empty());
    assert_eq!(s.line(), "look");
    let edits = type_in(&mut e, &mut s, b"\r");
    assert_eq!(edits, vec![Edit::Line("look".into())]);
    assert_eq!(s.done, vec!["look".to_owned()]);
    assert_eq!(s.line(), "");
}

#[test]
fn cr_lf_lf_and_cr_nul_each_end_one_line() {
    let (mut e, mut s) = editor();
    let edits = type_in(&mut e, &mut s, b"a\r\nb\nc\r\0d\r");
    assert_eq!(lines(&edits), vec!["a", "b", "c", "d"]);
    let edits = type_in(&mut e, &mut s, b"\n");
    assert!(edits.is_empty(), "the LF after a CR in an earlier read");
    let edits = type_in(&mut e, &mut s, b"\n");
    assert_eq!(lines(&edits), vec![""], "a second LF is an empty line");
}

#[test]
fn backspace_and_delete_remove_the_character_before_the_cursor() {
    for key in [0x7fu8, 0x08] {
        let (mut e, mut s) = editor();
        type_in(&mut e, &mut s, b"lok");
        type_in(&mut e, &mut s, &[key]);
        type_in(&mut e, &mut s, b"ok");
        assert_eq!(s.line(), "look");
        assert_eq!(lines(&type_in(&mut e, &mut s, b"\r")), vec!["look"]);
    }
}

#[test]
fn backspace_on_an_empty_line_does_nothing() {
    let (mut e, mut s) = editor();
    let mut echo = Vec::new();
    e.input(b"\x7f\x7f", &mut echo, &mut Vec::new());
    assert!(echo.is_empty());
    type_in(&mut e, &mut s, b"x\r");
    assert_eq!(s.done, vec!["x".to_owned()]);
}

#[test]
fn ctrl_u_clears_to_the_start_and_ctrl_w_drops_a_word() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"say hello there  ");
    type_in(&mut e, &mut s, &[0x17]);
    assert_eq!(s.line(), "say hello");
    assert_eq!(e.line(), "say hello ");
    type_in(&mut e, &mut s, &[0x15]);
    assert_eq!(s.line(), "");
    assert_eq!(e.line(), "");
    type_in(&mut e, &mut s, b"look\r");
    assert_eq!(s.done, vec!["look".to_owned()]);
}

#[test]
fn ctrl_c_drops_the_line_without_sending_it() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"drop all");
    let edits = type_in(&mut e, &mut s, &[0x03]);
    assert!(edits.is_empty());
    assert_eq!(e.line(), "");
    let edits = type_in(&mut e, &mut s, b"look\r");
    assert_eq!(lines(&edits), vec!["look"]);
}

#[test]
fn ctrl_d_quits_only_on_an_empty_line() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"ab\x02");
    let edits = type_in(&mut e, &mut s, &[0x04]);
    assert!(edits.is_empty(), "deletes under the cursor instead");
    assert_eq!(e.line(), "a");
    type_in(&mut e, &mut s, &[0x15]);
    assert_eq!(type_in(&mut e, &mut s, &[0x04]), vec![Edit::Quit]);
}

#[test]
fn left_right_home_end_move_and_insert_in_the_middle() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"sy hi");
    type_in(&mut e, &mut s, b"\x1b[D\x1b[D\x1b[D\x1b[D");
    type_in(&mut e, &mut s, b"a");
    assert_eq!(s.line(), "say hi");
    assert_eq!(s.cursor, e.cursor());
    type_in(&mut e, &mut s, b"\x1b[F!\x1b[Hx\x1bOC\x1bOD\x1bOD\x1b[3~");
    assert_eq!(e.line(), "say hi!");
    assert_eq!(s.line(), "say hi!");
    type_in(
        &mut e,
        &mut s,
        b"\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C",
    );
    assert_eq!(e.cursor(), 7, "stops at the end");
    assert_eq!(s.cursor, 7);
}

#[test]
fn up_and_down_walk_the_history() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"look\rsay hi\r");
    type_in(&mut e, &mut s, b"\x1b[A");
    assert_eq!(e.line(), "say hi");
    assert_eq!(s.line(), "say hi");
    type_in(&mut e, &mut s, b"\x1b[A\x1b[A");
    assert_eq!(e.line(), "look", "stops at the oldest");
    type_in(&mut e, &mut s, b"\x1b[B");
    assert_eq!(s.line(), "say hi");
    type_in(&mut e, &mut s, b"\x1b[B");
    assert_eq!(s.line(), "", "down past the newest gives an empty line");
    type_in(&mut e, &mut s, b"\x1b[A");
    let edits = type_in(&mut e, &mut s, b"\r");
    assert_eq!(lines(&edits), vec!["say hi"]);
}

#[test]
fn hidden_lines_are_not_echoed_nor_kept_in_history() {
    let (mut e, mut s) = editor();
    e.set_hidden(true);
    let mut echo = Vec::new();
    let mut edits = Vec::new();
    e.input(b"secret\x7fT", &mut echo, &mut edits);
    assert!(echo.is_empty(), "nothing of the password shows");
    e.input(b"\r", &mut echo, &mut edits);
    assert_eq!(echo, b"\r\n");
    assert_eq!(lines(&edits), vec!["secreT"]);
    e.set_hidden(false);
    type_in(&mut e, &mut s, b"\x1b[A");
    assert_eq!(e.line(), "", "the password is not in the history");
}

#[test]
fn utf8_is_decoded_even_split_across_reads_and_bad_bytes_replaced() {
    let (mut e, mut s) = editor();
    let word = "sé€😀".as_bytes();
    for b in word {
        type_in(&mut e, &mut s, &[*b]);
    }
    assert_eq!(e.line(), "sé€😀");
    type_in(&mut e, &mut s, b"\xff\xc3x");
    assert_eq!(e.line(), "sé€😀\u{fffd}\u{fffd}x");
    assert_eq!(s.line(), e.line());
}

#[test]
fn unknown_controls_and_escapes_are_swallowed() {
    let (mut e, mut s) = editor();
    type_in(
        &mut e,
        &mut s,
        b"a\x00\x07\x1b[1;5Pb\x1b[200~c\x1bxd\x1b[?25h\xc2\x85",
    );
    assert_eq!(e.line(), "abcd");
    assert_eq!(s.line(), "abcd");
}

#[test]
fn the_line_cap_refuses_more_with_a_bell() {
    let mut e = LineEditor::new(3);
    let mut echo = Vec::new();
    let mut edits = Vec::new();
    e.input(b"abcd", &mut echo, &mut edits);
    assert_eq!(e.line(), "abc");
    assert_eq!(echo, b"abc\x07");
}

#[test]
fn clear_and_redraw_keep_a_half_typed_line_around_output() {
    let (mut e, mut s) = editor();
    type_in(&mut e, &mut s, b"say hi\x1b[D");
    s.feed(&e.clear_bytes());
    assert_eq!(s.line(), "");
    s.feed(&e.redraw_bytes());
    assert_eq!(s.line(), "say hi");
    assert_eq!(s.cursor, e.cursor());
}

proptest! {
    /// Whatever is typed, the echo leaves the screen showing exactly the
    /// editor's line, cursor included, and never panics.
    #[test]
    fn the_screen_always_matches_the_line(keys in proptest::collection::vec(
        prop_oneof![
            Just(b"a".to_vec()), Just(b"b".to_vec()), Just(b" ".to_vec()),
            Just("é".as_bytes().to_vec()), Just(vec![0x7f]), Just(vec![0x08]),
            Just(vec![0x01]), Just(vec![0x05]), Just(vec![0x15]), Just(vec![0x17]),
            Just(vec![0x03]), Just(vec![0x04]), Just(b"\x1b[C".to_vec()),
            Just(b"\x1b[D".to_vec()), Just(b"\x1b[A".to_vec()), Just(b"\x1b[B".to_vec()),
            Just(b"\x1b[3~".to_vec()), Just(b"\r".to_vec()),
        ], 0..60)) {
        let mut e = LineEditor::new(20);
        let mut s = Screen::default();
        for key in keys {
            type_in(&mut e, &mut s, &key);
            prop_assert_eq!(s.line(), e.line().trim_end().to_owned());
            prop_assert_eq!(s.cursor, e.cursor());
        }
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut e = LineEditor::new(30);
        let mut echo = Vec::new();
        let mut edits = Vec::new();
        e.input(&bytes, &mut echo, &mut edits);
        prop_assert!(e.line().chars().count() <= 30);
    }
}

#[test]
fn a_carried_editor_comes_back_and_an_impossible_one_is_refused() {
    let mut e = LineEditor::new(20);
    let (mut echo, mut edits) = (Vec::new(), Vec::new());
    e.input(b"look\rsay hi\x1b[D", &mut echo, &mut edits);
    let bytes = postcard::to_stdvec(&e).unwrap();
    let back: LineEditor = postcard::from_bytes(&bytes).unwrap();
    assert!(back.fits());
    assert_eq!((back.line(), back.cursor()), ("say hi".to_owned(), 5));
    let mut cursor = back.clone();
    cursor.cursor = 7;
    assert!(!cursor.fits(), "a cursor past the line");
    let mut long = back.clone();
    long.set_max(3);
    assert!(!long.fits(), "a line past the cap");
    let mut history = back;
    history.history = vec!["x".into(); HISTORY + 1];
    assert!(!history.fits(), "more history than is kept");
}
