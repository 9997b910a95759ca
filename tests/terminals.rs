//! The UI in a real graphical terminal: xterm with sixel (`-ti vt340`) under Xvfb,
//! keys sent with xdotool, the pixels read from screenshots (ImageMagick's `import`).
//! Where each image went comes from the UI's frame log (`CAMWATCH_FRAME_LOG`); what is
//! checked are the pixels the terminal shows there.
//!
//! Needs Xvfb, xterm, xdotool and ImageMagick (`scripts/test` installs them).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::Value;

/// An X server of our own, stopped on drop.
struct Display {
    name: String,
    server: Child,
}

impl Display {
    /// Xvfb chooses a free display itself (`-displayfd`) and writes its number once it
    /// accepts clients. Guessing a number from /tmp/.X11-unix is not enough: another X
    /// server can hold the same number's abstract socket, and clients connect there first.
    fn start(work: &Path) -> Display {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let log = work.join("xvfb.log");
        let server = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp"])
            .args(["-screen", "0", "1280x900x24"])
            .stdout(writer)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("Xvfb runs (apt-get install xvfb)");
        let mut number = String::new();
        BufReader::new(reader).read_line(&mut number).unwrap();
        let number = number.trim();
        assert!(
            !number.is_empty(),
            "Xvfb named no display: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Display {
            name: format!(":{number}"),
            server,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("DISPLAY", &self.name);
        command
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = self
            .command("xdotool")
            .args(args)
            .output()
            .expect("xdotool runs (apt-get install xdotool)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The window's pixels.
    fn screenshot(&self, window: &str) -> RgbImage {
        let out = self
            .command("import")
            .args(["-window", window, "png:-"])
            .output()
            .expect("import runs (apt-get install imagemagick)");
        image::load_from_memory(&out.stdout)
            .expect("import writes a PNG")
            .to_rgb8()
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Polls `test` until it gives a value; fails after two minutes.
fn wait<T>(what: &str, mut test: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = test() {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn frames(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last frame once it satisfies `test` and nothing has been drawn for a second.
fn settled(log: &Path, what: &str, test: impl Fn(&Value) -> bool) -> Value {
    let mut seen = (0, Instant::now());
    wait(what, || {
        let frames = frames(log);
        if frames.len() != seen.0 {
            seen = (frames.len(), Instant::now());
            return None;
        }
        let last = frames.last()?;
        (test(last) && seen.1.elapsed() > Duration::from_secs(1)).then(|| last.clone())
    })
}

/// An image's place on screen in pixels, one cell in from its right and bottom edges
/// (an image need not fill its last cells).
struct Region {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    pane: String,
}

fn regions(frame: &Value, cell: (u32, u32)) -> Vec<Region> {
    frame["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let at: Vec<u32> = image["at"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            Region {
                x: at[0] * cell.0,
                y: at[1] * cell.1,
                width: at[2].saturating_sub(1).max(1) * cell.0,
                height: at[3].saturating_sub(1).max(1) * cell.1,
                pane: image["pane"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn pixels(shot: &RgbImage, r: &Region) -> Vec<[u8; 3]> {
    let mut out = Vec::new();
    for y in r.y..(r.y + r.height).min(shot.height()) {
        for x in r.x..(r.x + r.width).min(shot.width()) {
            out.push(shot.get_pixel(x, y).0);
        }
    }
    out
}

/// A picture, not text on a plain background nor a black hole.
fn assert_picture(shot: &RgbImage, r: &Region, when: &str) {
    let pixels = pixels(shot, r);
    assert!(
        !pixels.is_empty(),
        "{when}: {} is off the screenshot",
        r.pane
    );
    let mut colours: Vec<[u8; 3]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    let black = pixels.iter().filter(|p| p.iter().all(|&c| c < 16)).count();
    assert!(
        colours.len() > 8 && black * 10 < pixels.len() * 9,
        "{when}: {} shows {} colours, {black} of {} pixels black",
        r.pane,
        colours.len(),
        pixels.len()
    );
}

/// The size of a cell in pixels: the window's size over the terminal's, in cells.
fn cell_size(display: &Display, window: &str, frame: &Value) -> (u32, u32) {
    let shot = display.screenshot(window);
    let size = &frame["size"];
    (
        shot.width() / size[0].as_u64().unwrap() as u32,
        shot.height() / size[1].as_u64().unwrap() as u32,
    )
}

#[test]
fn xterm_sixel_shows_images_and_keeps_them_whole() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = common::demo_epochs("xterm-sixel", 4);
    let run = work.join("checkpoints");
    let log = work.join("frames.jsonl");
    let exit = work.join("exit");
    let display = Display::start(&work);
    let script = format!(
        "CAMWATCH_FRAME_LOG='{}' '{}' watch '{}' --samples '{}' --device cpu --snapshots '{}'; \
         echo $? > '{}'",
        log.display(),
        env!("CARGO_BIN_EXE_camwatch"),
        run.display(),
        root.join("samples").display(),
        work.join("snapshots").display(),
        exit.display()
    );
    let xterm_log = work.join("xterm.log");
    let mut xterm = display
        .command("xterm")
        .args(["-ti", "vt340", "-geometry", "120x40", "-b", "0", "+sb"])
        .args(["-name", "camwatch-test", "-e", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&xterm_log).unwrap())
        .spawn()
        .expect("xterm runs (apt-get install xterm)");
    let window = wait("the xterm window", || {
        // An xterm that could not start says why, at once.
        if let Some(status) = xterm.try_wait().unwrap() {
            panic!(
                "xterm ended ({status}) before its window appeared: {}",
                std::fs::read_to_string(&xterm_log).unwrap_or_default()
            );
        }
        let id = display.xdotool(&["search", "--classname", "camwatch-test"]);
        id.lines().next().map(String::from)
    });
    // Keys go where the pointer is (there is no window manager).
    display.xdotool(&["mousemove", "--window", &window, "20", "20"]);
    let key = |name: &str| {
        display.xdotool(&["key", name]);
    };

    let ready = |f: &Value| {
        f["epochs"] == 4
            && f["working"] == false
            && f["help"] == false
            && f["images"].as_array().unwrap().len() >= 6
    };
    let frame = settled(&log, "four epochs with their images", ready);
    assert_eq!(frame["protocol"], "sixel", "{frame}");
    let cell = cell_size(&display, &window, &frame);
    let before = display.screenshot(&window);
    let shown = regions(&frame, cell);
    for region in &shown {
        assert_picture(&before, region, "at the start");
    }

    // The help opens over the images and closes: every image region is as before.
    key("question");
    settled(&log, "the help", |f| f["help"] == true);
    let covered = display.screenshot(&window);
    let overlay = shown.iter().find(|r| r.pane == "Overlay").unwrap();
    assert_ne!(
        pixels(&covered, overlay),
        pixels(&before, overlay),
        "help over the overlay"
    );
    key("Escape");
    let frame = settled(&log, "the help closed", |f| f["help"] == false);
    let after = display.screenshot(&window);
    for region in regions(&frame, cell) {
        assert!(
            pixels(&after, &region) == pixels(&before, &region),
            "{} is not as it was before the help",
            region.pane
        );
    }
    assert!(!exit.exists(), "Esc closed the help without quitting");

    // The grid opens and closes the same way.
    key("g");
    settled(&log, "the grid", |f| f["grid"] == true);
    key("Escape");
    settled(&log, "the grid closed", |f| f["grid"] == false);
    let after = display.screenshot(&window);
    for region in &shown {
        assert!(
            pixels(&after, region) == pixels(&before, region),
            "{} after the grid",
            region.pane
        );
    }

    // Smaller: every image, thumbnails included, drawn again and none black.
    display.xdotool(&[
        "windowsize",
        &window,
        &(80 * cell.0).to_string(),
        &(24 * cell.1).to_string(),
    ]);
    let frame = settled(&log, "80×24", |f| {
        f["size"][0] == 80 && f["size"][1] == 24 && ready(f)
    });
    let small = display.screenshot(&window);
    let thumbs = regions(&frame, cell);
    assert!(
        thumbs
            .iter()
            .filter(|r| r.pane.starts_with("Thumb"))
            .count()
            >= 3
    );
    for region in &thumbs {
        assert_picture(&small, region, "after the resize");
    }

    // Esc from the plain view quits, with status 0.
    key("Escape");
    wait("camwatch to exit", || std::fs::read_to_string(&exit).ok());
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "0");
    let _ = xterm.wait();
}
