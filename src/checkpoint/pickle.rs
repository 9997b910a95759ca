//! A small, safe Python pickle reader: enough of the virtual machine to read what
//! `paddle.save` and `torch.save` write (protocols 2 to 5), without executing anything.
//!
//! Globals are never imported. `REDUCE`, `NEWOBJ` and `BUILD` produce [`Object`]s that
//! record the callable, its arguments and its state; the format readers interpret the
//! few they know (NumPy arrays, torch tensors, `OrderedDict`). Containers are shared by
//! reference, as in Python, because memoised dicts and lists are filled after they are
//! stored.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One decoded pickle value. Borrows large byte strings from the input.
#[derive(Clone, Debug)]
pub enum Value<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    /// UTF-8 text as stored in the input, validated when read: protocol 2 stores whole
    /// arrays as latin1 text, and validating them up front would double the load time.
    Text(&'a [u8]),
    Bytes(&'a [u8]),
    OwnedBytes(Rc<[u8]>),
    Tuple(Rc<[Value<'a>]>),
    List(Rc<RefCell<Vec<Value<'a>>>>),
    Dict(Rc<RefCell<Vec<(Value<'a>, Value<'a>)>>>),
    Global(Rc<str>, Rc<str>),
    Object(Rc<RefCell<Object<'a>>>),
    /// What `BINPERSID` loaded: torch's reference to a storage record.
    Persistent(Rc<Value<'a>>),
}

/// An object built by calling a global: `callable(*args)`, then `__setstate__(state)`,
/// plus any items appended or set on it (subclasses of dict and list).
#[derive(Debug)]
pub struct Object<'a> {
    /// `module.name` of the global it was built with, through any chain of objects
    /// built from objects: read once when built, so that asking costs no recursion.
    class: Option<Rc<str>>,
    pub callable: Value<'a>,
    pub args: Value<'a>,
    pub state: Option<Value<'a>>,
    pub items: Vec<(Value<'a>, Value<'a>)>,
    pub elements: Vec<Value<'a>>,
}

impl<'a> Value<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Text(t) => std::str::from_utf8(t).ok(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The elements of a tuple or list.
    pub fn as_seq(&self) -> Option<Vec<Value<'a>>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The elements of a tuple or list of at most `max` elements: where a reader
    /// expects a small record (a shape, an array's state), a huge list shared under
    /// many names is not copied once per name.
    pub fn small_seq(&self, max: usize) -> Option<Vec<Value<'a>>> {
        match self {
            Value::Tuple(t) if t.len() <= max => Some(t.to_vec()),
            Value::List(l) if l.borrow().len() <= max => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The items of a dict, or of an object built from a dict subclass (`OrderedDict`).
    pub fn dict_items(&self) -> Option<Vec<(Value<'a>, Value<'a>)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) if !o.borrow().items.is_empty() || o.borrow().is_dict_like() => {
                Some(o.borrow().items.clone())
            }
            _ => None,
        }
    }

    /// Looks up a string key in a dict-like value.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.dict_items()?
            .into_iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// `module.name` of a global, or of the callable an object was built with.
    pub fn class_name(&self) -> Option<String> {
        self.class().map(|c| c.to_string())
    }

    fn class(&self) -> Option<Rc<str>> {
        match self {
            Value::Global(m, n) => Some(format!("{m}.{n}").into()),
            Value::Object(o) => o.borrow().class.clone(),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::OwnedBytes(b) => Some(b),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) | Value::Text(_) => "str".into(),
            Value::Bytes(_) | Value::OwnedBytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(..) | Value::Object(_) => self.class_name().unwrap_or_default(),
            Value::Persistent(_) => "persistent id".into(),
        }
    }
}

impl<'a> Object<'a> {
    /// `callable(*args)`, not yet given a state or items.
    pub fn new(callable: Value<'a>, args: Value<'a>) -> Self {
        Object {
            class: callable.class(),
            callable,
            args,
            state: None,
            items: Vec::new(),
            elements: Vec::new(),
        }
    }

    fn is_dict_like(&self) -> bool {
        matches!(
            self.class.as_deref(),
            Some("collections.OrderedDict" | "collections.defaultdict" | "builtins.dict")
        )
    }
}

/// Encodes UTF-8 text whose characters are all below U+0100 as latin1, one byte per
/// character, validating as it goes; `None` for anything else. Protocol 2 stores every
/// large array this way, so this is the hot path of reading such files: 64 bytes at a
/// time where the CPU has AVX-512 VBMI2 (a 136 MB protocol-2 Res2Net50 loads in 128 ms
/// instead of 451), the scalar loop for the rest.
fn latin1(utf8: &[u8]) -> Option<Vec<u8>> {
    // Room for the vector loop's whole 64-byte stores past the last character.
    let mut out = vec![0u8; utf8.len() + 64];
    #[cfg(target_arch = "x86_64")]
    let (start, written) = if std::arch::is_x86_feature_detected!("avx512vbmi2")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: the features it is compiled for are present.
        unsafe { latin1_avx512(utf8, &mut out)? }
    } else {
        (0, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (start, written) = (0, 0);
    let end = latin1_scalar(utf8, start, &mut out, written)?;
    out.truncate(end);
    Some(out)
}

/// [`latin1`] from `utf8[start..]` into `out[written..]`: the end of what is written.
fn latin1_scalar(utf8: &[u8], start: usize, out: &mut [u8], written: usize) -> Option<usize> {
    // Branch-free and without a loop-carried load: every input byte writes one output
    // byte, and the output position only advances past characters' first bytes. On the
    // random bytes of float arrays half the characters take two bytes, which a branchy
    // decoder mispredicts every other time.
    let mut j = written;
    let mut invalid = 0u8;
    let mut previous = start.checked_sub(1).map_or(0, |p| utf8[p]);
    for (k, &b) in utf8.iter().enumerate().skip(start) {
        let next = utf8.get(k + 1).copied().unwrap_or(0);
        // Flags as 0/1 bytes combined with `&` and `|`, so that nothing branches.
        let ascii = (b >> 7) ^ 1;
        let lead = u8::from(b & 0xfe == 0xc2); // U+0080..U+00FF: 0xc2 0x80 ..= 0xc3 0xbf
        let continuation = u8::from(b & 0xc0 == 0x80);
        let ok = ascii
            | (lead & u8::from(next & 0xc0 == 0x80))
            | (continuation & u8::from(previous & 0xfe == 0xc2));
        invalid |= ok ^ 1;
        let keep = ascii.wrapping_neg(); // 0xff for ASCII
        out[j] = (b & keep) | ((((b & 0x03) << 6) | (next & 0x3f)) & !keep);
        j += usize::from(continuation ^ 1);
        previous = b;
    }
    (invalid == 0).then_some(j)
}

/// The vector part of [`latin1`]: whole 64-byte blocks while the byte after the block
/// exists (a two-byte character may straddle blocks). Returns where the scalar loop
/// goes on, in `utf8` and in `out`; `None` when the text is not latin1.
///
/// Per block, as bit masks: every byte must be ASCII, a lead byte 0xc2/0xc3 or a
/// continuation, and the continuations must be exactly the bytes after leads. A lead's
/// character is `(lead & 3) << 6 | next & 0x3f`; continuations are then compressed out.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
unsafe fn latin1_avx512(utf8: &[u8], out: &mut [u8]) -> Option<(usize, usize)> {
    use std::arch::x86_64::*;
    // The stores below rely on it.
    assert!(out.len() >= utf8.len() + 64);
    let (mut k, mut j) = (0usize, 0usize);
    let (mut bad, mut carry) = (0u64, 0u64);
    let (low2, low6) = (_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x3f));
    let (top2, lead_bits) = (
        _mm512_set1_epi8(0xc0u8 as i8),
        _mm512_set1_epi8(0xfeu8 as i8),
    );
    let (lead_value, continuation_value) = (
        _mm512_set1_epi8(0xc2u8 as i8),
        _mm512_set1_epi8(0x80u8 as i8),
    );
    while k + 65 <= utf8.len() {
        // SAFETY: k + 65 ≤ utf8.len() bounds both loads; j ≤ k, so out[j..j + 64] is
        // within out (utf8.len() + 64 long).
        let (b, next) = unsafe {
            (
                _mm512_loadu_si512(utf8.as_ptr().add(k).cast()),
                _mm512_loadu_si512(utf8.as_ptr().add(k + 1).cast()),
            )
        };
        let ascii = !_mm512_movepi8_mask(b);
        let lead = _mm512_cmpeq_epi8_mask(_mm512_and_si512(b, lead_bits), lead_value);
        let continuation = _mm512_cmpeq_epi8_mask(_mm512_and_si512(b, top2), continuation_value);
        bad |= !(ascii | lead | continuation);
        bad |= continuation ^ ((lead << 1) | carry);
        carry = lead >> 63;
        // (b & 3) << 6 stays within each byte of the 16-bit lanes.
        let two_byte = _mm512_or_si512(
            _mm512_slli_epi16(_mm512_and_si512(b, low2), 6),
            _mm512_and_si512(next, low6),
        );
        let chars = _mm512_mask_blend_epi8(ascii, two_byte, b);
        let packed = _mm512_maskz_compress_epi8(!continuation, chars);
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(j).cast(), packed) };
        j += (!continuation).count_ones() as usize;
        k += 64;
    }
    // A lead that ended the last block needs its continuation first in the rest.
    if carry == 1 && utf8.get(k).is_none_or(|&b| b & 0xc0 != 0x80) {
        bad = 1;
    }
    (bad == 0).then_some((k, j))
}

#[derive(Debug, thiserror::Error)]
#[error("pickle opcode {opcode:#04x} at byte {offset}: {message}")]
pub struct PickleError {
    pub offset: usize,
    pub opcode: u8,
    pub message: String,
    /// The data ended first: a prefix of a pickle still being written looks like this,
    /// and nothing else does.
    pub truncated: bool,
}

/// Limits that keep hostile input from exhausting the stack, memory or time. No real
/// checkpoint comes near them: a state dict is a dict of a few thousand small records,
/// its arrays' data are byte strings, and it nests a handful of levels deep.
///
/// Values on the machine's stack, and entries in its memo.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 20;
/// Tuples in tuples (and persistent ids in them): dropping or walking a value recurses
/// this deep at most. Lists, dicts and objects do not count: every one of them is
/// emptied without recursion when the pickle is dropped.
pub const MAX_NESTING: u32 = 100;
/// Elements placed in containers, copies included: the memory of the decoded tree, and
/// the time to build it, are bounded whatever the memo lets a small file refer to
/// again and again (a state dict with optimiser state holds tens of thousands).
pub const MAX_CELLS: usize = 1 << 20;
/// Bytes decoded into new strings (protocol 2's latin1 arrays, Python 2 strings): at
/// most twice the input plus this, however often a memoised text is decoded again.
const OWNED_BYTES_SLACK: usize = 1 << 20;

/// Nesting depths by address. Every tuple is entered here, so the hash must be cheap:
/// multiplicative hashing, folded so that the low bits (the bucket) vary although
/// addresses are aligned. Addresses are not chosen by the input: no flooding risk.
type AddressMap = HashMap<usize, u32, std::hash::BuildHasherDefault<AddressHasher>>;

#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A parsed pickle: its root value, and every container built while reading it.
///
/// A pickle can put a container inside itself (memoise a list, then append it to
/// itself), which with reference counting would never be freed. Dropping a `Pickle`
/// empties every container it built, so such cycles cannot leak: a monitor reads
/// untrusted files for days.
pub struct Pickle<'a> {
    pub root: Value<'a>,
    containers: Vec<Value<'a>>,
}

impl Drop for Pickle<'_> {
    fn drop(&mut self) {
        empty_all(&mut self.containers);
    }
}

fn empty_all(containers: &mut Vec<Value>) {
    for c in containers.drain(..) {
        match c {
            Value::List(l) => {
                if let Ok(mut l) = l.try_borrow_mut() {
                    l.clear();
                }
            }
            Value::Dict(d) => {
                if let Ok(mut d) = d.try_borrow_mut() {
                    d.clear();
                }
            }
            Value::Object(o) => {
                if let Ok(mut o) = o.try_borrow_mut() {
                    o.callable = Value::None;
                    o.args = Value::None;
                    o.state = None;
                    o.items.clear();
                    o.elements.clear();
                }
            }
            _ => {}
        }
    }
}

/// Reads one pickle from the start of `data`. Returns it and the number of bytes it
/// took, up to and including the STOP opcode.
pub fn parse(data: &[u8]) -> Result<(Pickle<'_>, usize), PickleError> {
    Machine::new(data).run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    opcode: u8,
    op_start: usize,
    stack: Vec<Value<'a>>,
    marks: Vec<usize>,
    /// Indexed by key: picklers number memo entries from 0, so this is dense; a key
    /// at or past [`MAX_MEMO`] is refused.
    memo: Vec<Option<Value<'a>>>,
    /// Entries stored in `memo` (the key MEMOIZE gives the next one).
    memo_count: usize,
    /// Every list, dict and object built, to be emptied when done (see [`Pickle`]).
    containers: Vec<Value<'a>>,
    /// The nesting of every tuple and persistent id built, by address (see
    /// [`MAX_NESTING`]): an address is only looked up while its value is alive.
    nesting: AddressMap,
    /// Elements placed in containers so far (see [`MAX_CELLS`]).
    cells: usize,
    /// Bytes of new strings so far, and the most allowed.
    owned_bytes: usize,
    max_owned_bytes: usize,
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        empty_all(&mut self.containers);
    }
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            opcode: 0,
            op_start: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Vec::new(),
            memo_count: 0,
            containers: Vec::new(),
            nesting: AddressMap::default(),
            cells: 0,
            owned_bytes: 0,
            max_owned_bytes: data.len().saturating_mul(2) + OWNED_BYTES_SLACK,
        }
    }

    /// Accounts for `n` more elements placed in containers.
    fn spend_cells(&mut self, n: usize) -> Result<(), PickleError> {
        self.cells = self.cells.saturating_add(n);
        if self.cells > MAX_CELLS {
            return self.err(format!(
                "more than {MAX_CELLS} values in containers (a checkpoint holds far fewer)"
            ));
        }
        Ok(())
    }

    /// Accounts for `n` more bytes of decoded strings.
    fn spend_bytes(&mut self, n: usize) -> Result<(), PickleError> {
        self.owned_bytes = self.owned_bytes.saturating_add(n);
        if self.owned_bytes > self.max_owned_bytes {
            return self.err(format!(
                "decodes more than {} bytes of strings from {} bytes of input",
                self.max_owned_bytes,
                self.data.len()
            ));
        }
        Ok(())
    }

    fn nesting_of(&self, v: &Value) -> u32 {
        let address = match v {
            Value::Tuple(t) => Rc::as_ptr(t) as *const () as usize,
            Value::Persistent(p) => Rc::as_ptr(p) as *const () as usize,
            _ => return 0,
        };
        self.nesting.get(&address).copied().unwrap_or(1)
    }

    /// Checks how deep a new tuple or persistent id around `inner` would nest.
    fn nest(&self, inner: &[Value<'a>]) -> Result<u32, PickleError> {
        let depth = 1 + inner.iter().map(|v| self.nesting_of(v)).max().unwrap_or(0);
        if depth > MAX_NESTING {
            return self.err(format!(
                "tuples nested more than {MAX_NESTING} deep (a checkpoint nests a few levels)"
            ));
        }
        Ok(depth)
    }

    fn tuple(&mut self, items: Vec<Value<'a>>) -> Result<Value<'a>, PickleError> {
        let depth = self.nest(&items)?;
        self.spend_cells(items.len())?;
        let tuple: Rc<[Value<'a>]> = items.into();
        self.nesting
            .insert(Rc::as_ptr(&tuple) as *const () as usize, depth);
        Ok(Value::Tuple(tuple))
    }

    fn persistent(&mut self, pid: Value<'a>) -> Result<Value<'a>, PickleError> {
        let depth = self.nest(std::slice::from_ref(&pid))?;
        let pid = Rc::new(pid);
        self.nesting
            .insert(Rc::as_ptr(&pid) as *const () as usize, depth);
        Ok(Value::Persistent(pid))
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_start,
            opcode: self.opcode,
            message: message.into(),
            truncated: false,
        })
    }

    fn truncated<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        self.err(message).map_err(|e| PickleError {
            truncated: true,
            ..e
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.truncated(format!(
                "the file ends {} bytes early (truncated?)",
                (self.pos as u128 + n as u128).saturating_sub(self.data.len() as u128)
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let n = self.u64()?;
        usize::try_from(n).or_else(|_| self.err("length does not fit in memory"))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.truncated("unterminated text line");
        };
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).or_else(|_| self.err("text line is not UTF-8"))
    }

    fn push(&mut self, v: Value<'a>) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err("stack too deep");
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value<'a>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        self.stack
            .pop()
            .map_or_else(|| self.err("stack underflow"), Ok)
    }

    fn top(&mut self) -> Result<&mut Value<'a>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        match self.stack.last_mut() {
            Some(v) => Ok(v),
            None => Err(PickleError {
                offset: self.op_start,
                opcode: self.opcode,
                message: "stack underflow".into(),
                truncated: false,
            }),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value<'a>>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        Ok(self.stack.split_off(mark))
    }

    /// Pushes a newly built container, registering it.
    fn push_container(&mut self, v: Value<'a>) -> Result<(), PickleError> {
        self.containers.push(v.clone());
        self.push(v)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        let index = key as usize;
        if index >= MAX_MEMO {
            return self.err(format!(
                "memo key {key}: more than {MAX_MEMO} memo entries (a checkpoint has far fewer)"
            ));
        }
        if index >= self.memo.len() {
            self.memo.resize(index + 1, None);
        }
        if self.memo[index].replace(v).is_none() {
            self.memo_count += 1;
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(key as usize).and_then(Option::as_ref) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn set_items(&mut self, target: &Value<'a>, items: Vec<Value<'a>>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of items for a dict");
        }
        self.spend_cells(items.len())?;
        let mut it = items.into_iter();
        let pairs = std::iter::from_fn(|| Some((it.next()?, it.next()?)));
        match target {
            Value::Dict(d) => d.borrow_mut().extend(pairs),
            Value::Object(o) => o.borrow_mut().items.extend(pairs),
            other => return self.err(format!("cannot set items on a {}", other.kind())),
        }
        Ok(())
    }

    fn append(&mut self, target: &Value<'a>, items: Vec<Value<'a>>) -> Result<(), PickleError> {
        self.spend_cells(items.len())?;
        match target {
            Value::List(l) => l.borrow_mut().extend(items),
            Value::Object(o) => o.borrow_mut().elements.extend(items),
            other => return self.err(format!("cannot append to a {}", other.kind())),
        }
        Ok(())
    }

    fn call(&mut self, callable: Value<'a>, args: Value<'a>) -> Result<Value<'a>, PickleError> {
        if !matches!(callable, Value::Global(..) | Value::Object(_)) {
            return self.err(format!("cannot call a {}", callable.kind()));
        }
        let name = callable.class_name().unwrap_or_default();
        // Protocol 2 writes `bytes` as `_codecs.encode(text, 'latin1')`.
        if name == "_codecs.encode" {
            let parts = args.small_seq(2).unwrap_or_default();
            if let [Value::Text(text), ..] = parts.as_slice() {
                self.spend_bytes(text.len())?;
                return match latin1(text) {
                    Some(b) => Ok(Value::OwnedBytes(b.into())),
                    None => self.err("latin1 text holds a character above U+00FF"),
                };
            }
        }
        if name == "builtins.bytes" || name == "__builtin__.bytes" {
            return Ok(Value::OwnedBytes(Rc::from(&[][..])));
        }
        // `tuple(iterable)`, as Paddle pickles a Tensor: `(tuple, ((name, array),))`.
        if name == "builtins.tuple" || name == "__builtin__.tuple" {
            let parts = args.small_seq(1).unwrap_or_default();
            let elements = parts.first().and_then(Value::as_seq).unwrap_or_default();
            return self.tuple(elements);
        }
        let object = Value::Object(Rc::new(RefCell::new(Object::new(callable, args))));
        self.containers.push(object.clone());
        Ok(object)
    }

    fn run(mut self) -> Result<(Pickle<'a>, usize), PickleError> {
        loop {
            self.op_start = self.pos;
            self.opcode = self.u8().map_err(|mut e| {
                e.message = "the file ends before the pickle's STOP opcode (truncated?)".into();
                e
            })?;
            match self.opcode {
                // Framing and protocol.
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => {
                    let root = self.pop()?;
                    let containers = std::mem::take(&mut self.containers);
                    return Ok((Pickle { root, containers }, self.pos));
                }
                // Marks and stack.
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return self.err("too many marks");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                // Constants.
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                // Integers.
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v.into()))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v.into()))?
                }
                0x8a | 0x8b => {
                    let n = if self.opcode == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return self.err(format!("integer of {n} bytes is too large"));
                    }
                    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(bytes);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?
                }
                b'I' | b'L' => {
                    let line = self.line()?.trim_end_matches('L');
                    let v = match line {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => match line.parse() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.err(format!("bad integer {line:?}")),
                        },
                    };
                    self.push(v)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default());
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(f) => self.push(Value::Float(f))?,
                        Err(_) => return self.err(format!("bad float {line:?}")),
                    }
                }
                // Strings and bytes.
                b'X' | 0x8c | 0x8d => {
                    let n = match self.opcode {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    self.push(Value::Text(bytes))?
                }
                // Python 2 str (BINSTRING, SHORT_BINSTRING), read as latin1 like Paddle does.
                b'T' | b'U' => {
                    let n = if self.opcode == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let bytes = self.take(n)?;
                    self.spend_bytes(2 * n)?;
                    let s: String = bytes.iter().map(|&b| char::from(b)).collect();
                    self.push(Value::Str(s.into()))?
                }
                b'V' => {
                    let line = self.line()?;
                    self.spend_bytes(line.len())?;
                    self.push(Value::Str(line.into()))?
                }
                b'S' => {
                    let line = self.line()?;
                    self.spend_bytes(line.len())?;
                    let s = line.trim_matches(|c| c == '\'' || c == '"');
                    self.push(Value::Str(s.into()))?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match self.opcode {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    self.push(Value::Bytes(bytes))?
                }
                // Containers.
                b'}' => self.push_container(Value::Dict(Rc::default()))?,
                b']' => self.push_container(Value::List(Rc::default()))?,
                b')' => {
                    let empty = self.tuple(Vec::new())?;
                    self.push(empty)?
                }
                0x8f => self.push_container(Value::List(Rc::default()))?, // EMPTY_SET, as a list
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = Value::Dict(Rc::default());
                    self.set_items(&dict, items)?;
                    self.push_container(dict)?
                }
                b'l' | 0x91 => {
                    // LIST, FROZENSET
                    let items = self.pop_mark()?;
                    self.spend_cells(items.len())?;
                    self.push_container(Value::List(Rc::new(RefCell::new(items))))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let tuple = self.tuple(items)?;
                    self.push(tuple)?
                }
                0x85..=0x87 => {
                    let n = (self.opcode - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.err("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let tuple = self.tuple(items)?;
                    self.push(tuple)?
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?.clone();
                    self.append(&list, vec![item])?
                }
                b'e' | 0x90 => {
                    // APPENDS, ADDITEMS
                    let items = self.pop_mark()?;
                    let list = self.top()?.clone();
                    self.append(&list, items)?
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, items)?
                }
                // Memo.
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo_count).unwrap_or(u32::MAX);
                    self.memo_put(k)?
                }
                b'p' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(k) => self.memo_put(k)?,
                        Err(_) => return self.err("bad memo key"),
                    }
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'g' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(k) => self.memo_get(k)?,
                        Err(_) => return self.err("bad memo key"),
                    }
                }
                // Objects.
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module.into(), name.into()))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let global = Value::Global(m.into(), n.into());
                            self.push(global)?
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let obj = self.call(callable, args)?;
                    self.push(obj)?
                }
                0x92 => {
                    // NEWOBJ_EX: cls, args, kwargs
                    self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let obj = self.call(callable, args)?;
                    self.push(obj)?
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Object(o) => o.borrow_mut().state = Some(state),
                        // Plain containers with a __dict__ (rare): the state carries nothing
                        // a checkpoint reader needs.
                        Value::Dict(_) | Value::List(_) => {}
                        other => {
                            let kind = other.kind();
                            return self.err(format!("cannot set the state of a {kind}"));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let persistent = self.persistent(pid)?;
                    self.push(persistent)?
                }
                other => {
                    return self.err(format!("unknown or unsupported opcode {:?}", other as char));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_protocol_4_dict() {
        // pickle.dumps({'a': 1, 'b': [1.5, 'x']}, protocol=4)
        let data = b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94K\x01\x8c\x01b\x94]\x94(G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x01x\x94eu.";
        let (pickle, used) = parse(data).expect("parses");
        let v = &pickle.root;
        assert_eq!(used, data.len());
        assert_eq!(v.get("a").and_then(|v| v.as_int()), Some(1));
        let b = v.get("b").and_then(|v| v.as_seq()).expect("list");
        assert!(matches!(b[0], Value::Float(f) if f == 1.5));
        assert_eq!(b[1].as_str(), Some("x"));
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let data = b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94K\x01\x8c\x01b\x94]\x94(G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x01x\x94eu.";
        for end in 0..data.len() {
            assert!(parse(&data[..end]).is_err(), "prefix of {end} bytes");
        }
    }

    #[test]
    fn self_referencing_containers_are_freed() {
        // l = []; l.append(l); d = {}; d['d'] = d; pickle.dumps([l, d], protocol=2)
        let data = b"\x80\x02]q\x00(]q\x01h\x01a}q\x02X\x01\x00\x00\x00dq\x03h\x02se.";
        let (pickle, _) = parse(data).expect("parses");
        let parts = pickle.root.as_seq().unwrap();
        let (Value::List(l), Value::Dict(d)) = (&parts[0], &parts[1]) else {
            panic!("a list and a dict")
        };
        let (l, d) = (Rc::downgrade(l), Rc::downgrade(d));
        drop(parts);
        drop(pickle);
        assert!(
            l.upgrade().is_none() && d.upgrade().is_none(),
            "cycle leaked"
        );
    }

    #[test]
    fn latin1_covers_every_byte() {
        let text: String = (0u8..=255).map(char::from).collect();
        assert_eq!(latin1(text.as_bytes()), Some((0u8..=255).collect()));
        assert_eq!(latin1("Ā".as_bytes()), None);
        assert_eq!(latin1(b"\xc3"), None);
        assert_eq!(latin1(b"\xc3("), None);
    }

    /// The vector loop against the scalar one: every latin1 text (from random bytes,
    /// with runs of ASCII and of two-byte characters across block edges), and texts
    /// broken at every position of a block.
    #[test]
    fn latin1_vector_and_scalar_agree() {
        let scalar = |utf8: &[u8]| {
            let mut out = vec![0u8; utf8.len() + 64];
            latin1_scalar(utf8, 0, &mut out, 0).map(|end| out[..end].to_vec())
        };
        let mut state = 7u64;
        let mut random = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 200, 1000, 4099] {
            for ascii_percent in [0, 50, 95, 100] {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let ascii = random() % 100 < ascii_percent;
                        (random() % 128) as u8 + if ascii { 0 } else { 128 }
                    })
                    .collect();
                let text: String = bytes.iter().map(|&b| char::from(b)).collect();
                let utf8 = text.as_bytes();
                assert_eq!(latin1(utf8), Some(bytes.clone()), "len {len}");
                assert_eq!(latin1(utf8), scalar(utf8));
                // Broken: a byte changed, at each position of the first two blocks.
                for at in 0..utf8.len().min(130) {
                    for bad in [0x80, 0xc2, 0xc4, 0xff, b'a'] {
                        let mut broken = utf8.to_vec();
                        broken[at] = bad;
                        assert_eq!(
                            latin1(&broken),
                            scalar(&broken),
                            "len {len} at {at} = {bad:#x}"
                        );
                    }
                }
                // Cut after a lead byte.
                if let Some(cut) = utf8.iter().rposition(|&b| b >= 0xc2) {
                    assert_eq!(latin1(&utf8[..=cut]), None);
                }
            }
        }
    }

    #[test]
    fn latin1_bytes_of_protocol_2() {
        // pickle.dumps(b'\x00\xff', protocol=2)
        let data = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00\x00\xc3\xbfq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.";
        let (pickle, _) = parse(data).expect("parses");
        assert_eq!(pickle.root.bytes(), Some(&[0u8, 255][..]));
    }
}
