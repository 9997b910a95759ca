//! Which graphics protocol the terminal draws, from what it answers to a few queries
//! (these cross SSH, unlike environment variables) and the environment where they
//! do not suffice (tmux in front, iTerm2 and WezTerm).
//!
//! The queries, all answered by the terminal without drawing anything:
//! - kitty's graphics query (`a=q`): `ESC _ G i=31;OK ESC \` where kitty graphics work;
//! - XTVERSION (`CSI > 0 q`): the terminal's name and version;
//! - the cell size in pixels (`CSI 16 t`) and the text area's (`CSI 14 t`);
//! - primary device attributes (`CSI c`), last: every terminal answers it, so its reply
//!   ends the wait; attribute 4 means sixel.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::graphics::{Graphics, Protocol};

/// Asked for by the user: `auto` or one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolChoice {
    Auto,
    Forced(Protocol),
}

impl std::str::FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => ProtocolChoice::Auto,
            "kitty" => ProtocolChoice::Forced(Protocol::Kitty),
            "sixel" => ProtocolChoice::Forced(Protocol::Sixel),
            "iterm2" => ProtocolChoice::Forced(Protocol::Iterm2),
            "halfblocks" => ProtocolChoice::Forced(Protocol::Halfblocks),
            _ => {
                return Err(format!(
                    "{s:?}: expected auto, kitty, sixel, iterm2 or halfblocks"
                ));
            }
        })
    }
}

/// The queries, in one write.
pub const QUERIES: &[u8] =
    b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\x1b[>0q\x1b[16t\x1b[14t\x1b[c";

/// What the terminal answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replies {
    /// XTVERSION's text, e.g. `XTerm(390)`, `kitty(0.26.5)`, `tmux 3.3a`.
    pub version: Option<String>,
    /// Primary device attributes (after `?`).
    pub attributes: Option<Vec<u32>>,
    /// kitty's graphics query: `Some(true)` for OK, `Some(false)` for an error reply.
    pub kitty: Option<bool>,
    /// A cell's size in pixels (width, height).
    pub cell: Option<(u16, u16)>,
    /// The text area's size in pixels (width, height).
    pub window: Option<(u16, u16)>,
}

/// What the environment says, for what the replies cannot.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub tmux: bool,
    /// `TERM_PROGRAM` (`iTerm.app`, `WezTerm`, … ; not forwarded by SSH).
    pub term_program: Option<String>,
    /// `LC_TERMINAL` (iTerm2 sets it, and SSH forwards `LC_*`).
    pub lc_terminal: Option<String>,
    /// `TERM`, to name a terminal that does not name itself.
    pub term: Option<String>,
}

impl Env {
    pub fn of_process() -> Env {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            tmux: var("TMUX").is_some(),
            term_program: var("TERM_PROGRAM"),
            lc_terminal: var("LC_TERMINAL"),
            term: var("TERM"),
        }
    }
}

/// The protocol chosen, the terminal as it named itself, and why, when it is not the
/// one a user would expect.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub graphics: Graphics,
    pub terminal: String,
    /// One line for the status bar: a fallback, or a guess that may be wrong.
    pub notice: Option<String>,
}

impl Choice {
    /// For the status line and the help: `sixel · XTerm(390)`.
    pub fn label(&self) -> String {
        format!("{} · {}", self.graphics.protocol.name(), self.terminal)
    }
}

/// Writes the queries and reads the replies, up to `timeout`; the terminal must be in
/// raw mode and nothing else may be reading its input.
pub fn query(timeout: Duration) -> io::Result<Vec<u8>> {
    let mut out = io::stdout().lock();
    out.write_all(QUERIES)?;
    out.flush()?;
    let start = Instant::now();
    let mut got = Vec::new();
    while !has_attributes(&got) {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let mut poll = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().max(1) as i32) };
        if ready <= 0 {
            if ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let mut buffer = [0u8; 1024];
        // SAFETY: reads at most the buffer's length into it.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&buffer[..n as usize]);
    }
    Ok(got)
}

fn has_attributes(bytes: &[u8]) -> bool {
    parse(bytes).attributes.is_some()
}

/// The replies in `bytes` (anything else, such as keys typed meanwhile, is skipped).
pub fn parse(bytes: &[u8]) -> Replies {
    let mut replies = Replies::default();
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    while let Some(start) = rest.find('\x1b') {
        rest = &rest[start..];
        if let Some(body) = rest.strip_prefix("\x1bP>|") {
            // XTVERSION: DCS > | text ST
            let end = body.find("\x1b\\").unwrap_or(body.len());
            replies.version = Some(body[..end].trim().to_string());
            rest = &body[end..];
        } else if let Some(body) = rest.strip_prefix("\x1b_G") {
            // kitty: APC G i=31;OK ST (or i=31;EINVAL:… ST)
            let end = body.find("\x1b\\").unwrap_or(body.len());
            let reply = &body[..end];
            if reply.starts_with("i=31") {
                let message = reply.split_once(';').map_or("", |(_, m)| m);
                replies.kitty = Some(message == "OK");
            }
            rest = &body[end..];
        } else if let Some(body) = rest.strip_prefix("\x1b[") {
            let end = body
                .find(|c: char| !(c.is_ascii_digit() || c == ';' || c == '?'))
                .unwrap_or(body.len());
            let (params, last) = (&body[..end], body[end..].chars().next());
            let numbers =
                |p: &str| -> Vec<u32> { p.split(';').filter_map(|n| n.parse().ok()).collect() };
            match (last, params.strip_prefix('?')) {
                (Some('c'), Some(attributes)) => replies.attributes = Some(numbers(attributes)),
                (Some('t'), None) => match numbers(params)[..] {
                    [6, h, w] if h > 0 && w > 0 => replies.cell = Some((w as u16, h as u16)),
                    [4, h, w] if h > 0 && w > 0 => replies.window = Some((w as u16, h as u16)),
                    _ => {}
                },
                _ => {}
            }
            rest = &body[end.min(body.len())..];
        } else {
            rest = &rest[1..];
        }
    }
    replies
}

/// A cell's size in pixels when the terminal did not say: what a common font has.
const ASSUMED_CELL: (u16, u16) = (10, 20);

/// The protocol for a terminal that gave `replies`, in `env`, on a screen of `columns`
/// × `rows` cells.
pub fn choose(
    replies: &Replies,
    env: &Env,
    choice: ProtocolChoice,
    columns_rows: (u16, u16),
) -> Choice {
    let version = replies.version.clone().unwrap_or_default();
    let lower = version.to_ascii_lowercase();
    let is = |name: &str| lower.starts_with(name);
    let program = env.term_program.as_deref().unwrap_or("");
    let tmux = env.tmux || is("tmux");
    let sixel = replies.attributes.as_ref().is_some_and(|a| a.contains(&4));
    let terminal = if !version.is_empty() {
        version.clone()
    } else if !program.is_empty() {
        program.to_string()
    } else if let Some(term) = &env.term {
        format!("TERM={term}")
    } else if replies.attributes.is_some() {
        "a terminal without XTVERSION".to_string()
    } else {
        "a terminal that did not answer".to_string()
    };
    let (cell, cell_known) = match (replies.cell, replies.window) {
        (Some(cell), _) => (cell, true),
        (None, Some((w, h))) if columns_rows.0 > 0 && columns_rows.1 > 0 => (
            ((w / columns_rows.0).max(1), (h / columns_rows.1).max(1)),
            true,
        ),
        _ => (ASSUMED_CELL, false),
    };
    let auto = if tmux {
        if sixel {
            (Protocol::Sixel, None)
        } else {
            (
                Protocol::Halfblocks,
                Some(format!(
                    "{terminal}: no sixel through tmux (3.4+ built with sixel has it); halfblocks"
                )),
            )
        }
    } else if is("wezterm") || program == "WezTerm" {
        // WezTerm's kitty support is partial; its iTerm2 images are exact.
        (Protocol::Iterm2, None)
    } else if is("iterm2") || program == "iTerm.app" || env.lc_terminal.as_deref() == Some("iTerm2")
    {
        (Protocol::Iterm2, None)
    } else if replies.kitty == Some(true) {
        (Protocol::Kitty, None)
    } else if sixel {
        (Protocol::Sixel, None)
    } else {
        let why = if replies.attributes.is_none() {
            "no reply to the terminal queries".to_string()
        } else if is("xterm") {
            format!("{terminal} has no sixel here (xterm -ti vt340 has)")
        } else {
            format!("{terminal} offers no kitty, sixel or iTerm2 images")
        };
        (Protocol::Halfblocks, Some(format!("{why}; halfblocks")))
    };
    let (protocol, mut notice) = match choice {
        ProtocolChoice::Auto => auto,
        ProtocolChoice::Forced(forced) => {
            let supported = match forced {
                Protocol::Halfblocks => true,
                Protocol::Sixel => sixel,
                Protocol::Kitty => replies.kitty == Some(true),
                Protocol::Iterm2 => auto.0 == Protocol::Iterm2,
            };
            let notice = (!supported).then(|| {
                format!(
                    "--protocol {}: {terminal} did not say it has it",
                    forced.name()
                )
            });
            (forced, notice)
        }
    };
    if notice.is_none() && !cell_known && protocol != Protocol::Halfblocks {
        notice = Some(format!(
            "{terminal} did not tell its cell size: assumed {}×{} pixels",
            ASSUMED_CELL.0, ASSUMED_CELL.1
        ));
    }
    Choice {
        graphics: Graphics { protocol, cell },
        terminal,
        notice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies to [`QUERIES`], and the environment they came with: recorded here
    /// (X11 under Xvfb: xterm 379, kitty 0.26.5, mlterm 3.9.0, tmux 3.3a in front of
    /// each) or, for terminals this machine cannot run, written from the terminals'
    /// sources and documentation (marked so).
    struct Case {
        name: &'static str,
        env: Env,
        replies: &'static [u8],
        protocol: Protocol,
        cell: (u16, u16),
        notice: bool,
    }

    fn env(tmux: bool, term_program: Option<&str>, lc_terminal: Option<&str>) -> Env {
        Env {
            tmux,
            term_program: term_program.map(String::from),
            lc_terminal: lc_terminal.map(String::from),
            term: None,
        }
    }

    fn cases() -> Vec<Case> {
        let xterm = b"\x1bP>|XTerm(379)\x1b\\\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c";
        let tmux = b"\x1bP>|tmux 3.3a\x1b\\\x1b[?1;2c";
        let in_tmux = || env(true, Some("tmux"), None);
        let case = |name, env, replies, protocol, cell, notice| Case {
            name,
            env,
            replies,
            protocol,
            cell,
            notice,
        };
        vec![
            // Recorded.
            case("xterm", Env::default(), xterm, Protocol::Halfblocks, (10, 20), true),
            case(
                "xterm -ti vt340",
                Env::default(),
                b"\x1bP>|XTerm(379)\x1b\\\x1b[?63;1;2;4;6;9;15;16;22;28c",
                Protocol::Sixel,
                (10, 20),
                true,
            ),
            case(
                "kitty 0.26.5",
                Env::default(),
                b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;20;9t\x1b[4;400;639t\x1b[?62;c",
                Protocol::Kitty,
                (9, 20),
                false,
            ),
            case(
                "mlterm 3.9.0",
                Env::default(),
                b"\x1b[6;22;10t\x1b[4;528;800t\x1b[?63;1;2;3;4;6;7;15;18;22;29c",
                Protocol::Sixel,
                (10, 22),
                false,
            ),
            // tmux 3.3a answers for the terminal behind it, the same in front of each
            // (recorded in xterm, xterm -ti vt340, kitty 0.26.5 and mlterm).
            case("tmux in xterm", in_tmux(), tmux, Protocol::Halfblocks, (10, 20), true),
            case("tmux in xterm -ti vt340", in_tmux(), tmux, Protocol::Halfblocks, (10, 20), true),
            case("tmux in kitty", in_tmux(), tmux, Protocol::Halfblocks, (10, 20), true),
            case("tmux in mlterm", in_tmux(), tmux, Protocol::Halfblocks, (10, 20), true),
            // Written from sources and documentation.
            case(
                "tmux 3.4 built with sixel",
                in_tmux(),
                b"\x1bP>|tmux 3.4\x1b\\\x1b[?1;2;4c",
                Protocol::Sixel,
                (10, 20),
                true,
            ),
            case(
                "kitty 0.39",
                env(false, None, None),
                b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.39.1)\x1b\\\x1b[6;22;11t\x1b[4;1056;1760t\x1b[?62;c",
                Protocol::Kitty,
                (11, 22),
                false,
            ),
            case(
                "WezTerm",
                env(false, Some("WezTerm"), None),
                b"\x1b_Gi=31;OK\x1b\\\x1bP>|WezTerm 20240203-110809-5046fc22\x1b\\\x1b[6;19;9t\x1b[?65;4;6;18;22c",
                Protocol::Iterm2,
                (9, 19),
                false,
            ),
            case(
                "WezTerm over ssh",
                Env::default(),
                b"\x1b_Gi=31;OK\x1b\\\x1bP>|WezTerm 20240203-110809-5046fc22\x1b\\\x1b[6;19;9t\x1b[?65;4;6;18;22c",
                Protocol::Iterm2,
                (9, 19),
                false,
            ),
            case(
                "iTerm2",
                env(false, Some("iTerm.app"), Some("iTerm2")),
                b"\x1bP>|iTerm2 3.5.5\x1b\\\x1b[4;1200;2000t\x1b[?62;4c",
                Protocol::Iterm2,
                (25, 50),
                false,
            ),
            case(
                "iTerm2 over ssh, before XTVERSION",
                env(false, None, Some("iTerm2")),
                b"\x1b[?62;4c",
                Protocol::Iterm2,
                (10, 20),
                true,
            ),
            case(
                "foot",
                env(false, None, None),
                b"\x1bP>|foot(1.16.2)\x1b\\\x1b[6;18;9t\x1b[4;432;720t\x1b[?62;4;22c",
                Protocol::Sixel,
                (9, 18),
                false,
            ),
            case("tmux in foot", in_tmux(), tmux, Protocol::Halfblocks, (10, 20), true),
            case(
                "tmux in WezTerm",
                in_tmux(),
                tmux,
                Protocol::Halfblocks,
                (10, 20),
                true,
            ),
            case(
                "tmux in iTerm2",
                env(true, Some("tmux"), Some("iTerm2")),
                tmux,
                Protocol::Halfblocks,
                (10, 20),
                true,
            ),
            case("no reply", Env::default(), b"", Protocol::Halfblocks, (10, 20), true),
        ]
    }

    #[test]
    fn each_terminal_gets_the_protocol_it_draws() {
        for case in cases() {
            let replies = parse(case.replies);
            let choice = choose(&replies, &case.env, ProtocolChoice::Auto, (80, 24));
            assert_eq!(
                choice.graphics.protocol, case.protocol,
                "{}: {replies:?}",
                case.name
            );
            assert_eq!(choice.graphics.cell, case.cell, "{}", case.name);
            assert_eq!(
                choice.notice.is_some(),
                case.notice,
                "{}: {:?}",
                case.name,
                choice.notice
            );
        }
    }

    #[test]
    fn replies_parse_among_other_input() {
        let replies = parse(
            b"j\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;20;10t\x1b[4;480;800tk\x1b[?62;c",
        );
        assert_eq!(
            replies,
            Replies {
                version: Some("kitty(0.26.5)".into()),
                attributes: Some(vec![62]),
                kitty: Some(true),
                cell: Some((10, 20)),
                window: Some((800, 480)),
            }
        );
        assert!(parse(b"\x1b_Gi=31;ENOTSUPPORTED:\x1b\\").kitty == Some(false));
        assert_eq!(parse(b"\x1b[?1;2c").attributes, Some(vec![1, 2]));
        assert_eq!(parse(b"garbage\x1b[").attributes, None);
    }

    #[test]
    fn forced_protocols_are_kept_with_a_notice_when_unsupported() {
        let replies = parse(b"\x1bP>|XTerm(379)\x1b\\\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c");
        let choice = choose(
            &replies,
            &Env::default(),
            ProtocolChoice::Forced(Protocol::Kitty),
            (80, 24),
        );
        assert_eq!(choice.graphics.protocol, Protocol::Kitty);
        assert!(choice.notice.unwrap().contains("did not say"));
        let halfblocks = choose(
            &replies,
            &Env::default(),
            ProtocolChoice::Forced(Protocol::Halfblocks),
            (80, 24),
        );
        assert_eq!(halfblocks.notice, None);
    }
}
