//! The usual OpenAI 2xx answer read without a `Value` tree: a chat
//! completion or a legacy text completion whose first choice has
//! non-empty text, or a Responses API answer whose `message` items have
//! output text, with a `usage` object. Nearly every item's answer is one,
//! and building, reading and freeing the tree was most of a plugin's work
//! per item.
//!
//! The reading gives exactly what the tree gives
//! ([`crate::openai::parse_success`]), or nothing, and then the caller
//! reads the tree: anything unusual (embeddings, no `usage` object, no
//! text, a `model` that is not a string, a failed or incomplete response,
//! invalid JSON) is left to the one implementation of the rules. Every
//! value it does not use is still parsed as the tree parses it (numbers in
//! range, strings, escapes and nesting depth checked), so it accepts no
//! body the tree rejects; a key seen twice counts once, the last, as in
//! the tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};

use crate::openai::Endpoint;
use crate::usage::count_of_f64;
use crate::{Answer, Usage};

/// The answer of `endpoint` when it is the usual success; else the body
/// `text` back, for the tree.
pub(crate) fn success(endpoint: Endpoint, text: String) -> Result<Answer, String> {
    let shape = match endpoint {
        Endpoint::ChatCompletions => Shape::Chat,
        Endpoint::Completions => Shape::Completions,
        Endpoint::Responses => Shape::Responses,
        Endpoint::Embeddings => return Err(text),
    };
    match read(shape, &text) {
        Some((output, usage, metadata)) => {
            Ok(Answer { output, usage, response_body: Some(text), metadata: Some(metadata) })
        }
        None => Err(text),
    }
}

/// The answer shapes this reading knows: where the output text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `choices[0].message.content`.
    Chat,
    /// `choices[0].text`.
    Completions,
    /// The `output_text` parts of the `message` items of `output`.
    Responses,
}

/// The output, usage and metadata text of the usual success, or `None`.
fn read(shape: Shape, text: &str) -> Option<(String, Option<Usage>, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = TopSeed { shape }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    // A failed response may carry an error to classify.
    if top.status.as_deref() == Some("failed") {
        return None;
    }
    let output = top.output.filter(|t| !t.is_empty())?.into_owned();
    let usage = top.usage?.usage();
    let fields = [
        ("finish_reason", top.finish_reason.as_deref()),
        ("id", top.id.as_deref()),
        ("model", top.model.as_deref()),
        ("status", top.status.as_deref()),
    ];
    Some((output, usage, metadata(&fields)?))
}

/// The metadata object the tree gives: the `fields` present, in the sorted
/// order in which the tree's map writes them (`fields` is sorted).
fn metadata(fields: &[(&str, Option<&str>)]) -> Option<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(None).ok()?;
    for (key, value) in fields {
        if let Some(value) = value {
            map.serialize_entry(key, value).ok()?;
        }
    }
    map.end().ok()?;
    String::from_utf8(out).ok()
}

/// What the top-level object holds for the answer.
struct Top<'a> {
    /// The output text: the first choice's, or the Responses API's joined.
    output: Option<Cow<'a, str>>,
    /// The first choice's (chat and completions).
    finish_reason: Option<Cow<'a, str>>,
    /// The response's (Responses API).
    status: Option<Cow<'a, str>>,
    usage: Option<UsageFields>,
    id: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
}

/// Reads a [`Top`] of `shape`.
#[derive(Clone, Copy)]
struct TopSeed {
    shape: Shape,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an answer object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top { output: None, finish_reason: None, status: None, usage: None, id: None, model: None };
        let responses = self.shape == Shape::Responses;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match (key.0.as_ref(), responses) {
                ("choices", false) => {
                    let choice = map.next_value_seed(ChoicesSeed { completions: self.shape == Shape::Completions })?;
                    (top.output, top.finish_reason) = (choice.text, choice.finish_reason);
                }
                ("output", true) => top.output = Some(Cow::Owned(map.next_value::<OutputText>()?.0)),
                ("status", true) => top.status = map.next_value::<Leaf<'de>>()?.opt_str()?,
                // Set on an incomplete response, which goes in the metadata
                // as it is: left to the tree.
                ("incomplete_details", true) => {
                    if map.next_value::<Leaf<'de>>()?.opt_str()?.is_some() {
                        return Err(de::Error::custom("incomplete details"));
                    }
                }
                ("usage", _) => top.usage = Some(map.next_value()?),
                ("id", _) => top.id = map.next_value::<Leaf<'de>>()?.opt_str()?,
                ("model", _) => top.model = map.next_value::<Leaf<'de>>()?.opt_str()?,
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(top)
    }
}

/// A Responses API `output` array: the text of every `output_text` part
/// of its `message` items, joined (empty without one).
struct OutputText(String);

impl<'de> Deserialize<'de> for OutputText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(OutputTextVisitor)
    }
}

struct OutputTextVisitor;

impl<'de> Visitor<'de> for OutputTextVisitor {
    type Value = OutputText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an output array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OutputText, A::Error> {
        let mut text = String::new();
        while let Some(item) = seq.next_element::<OutputItem<'de>>()? {
            if item.kind.as_deref() == Some("message") {
                item.texts.iter().for_each(|t| text.push_str(t));
            }
        }
        Ok(OutputText(text))
    }
}

/// An item of a Responses API `output`: its `type` and the texts of the
/// `output_text` parts of its `content` (any value but an object is an
/// item of no type).
struct OutputItem<'a> {
    kind: Option<Cow<'a, str>>,
    texts: Vec<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for OutputItem<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OutputItemVisitor)
    }
}

struct OutputItemVisitor;

impl<'de> Visitor<'de> for OutputItemVisitor {
    type Value = OutputItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an output item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OutputItem<'de>, A::Error> {
        let mut item = OutputItem { kind: None, texts: Vec::new() };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "type" => item.kind = map.next_value::<Leaf<'de>>()?.into_str(),
                "content" => item.texts = map.next_value::<PartTexts<'de>>()?.0,
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(item)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OutputItem<'de>, A::Error> {
        drain_seq(seq).map(|()| OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }

    fn visit_unit<E: de::Error>(self) -> Result<OutputItem<'de>, E> {
        Ok(OutputItem { kind: None, texts: Vec::new() })
    }
}

/// A message item's `content`: the texts of its `output_text` parts, in
/// order (anything but an array has none).
struct PartTexts<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for PartTexts<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PartTextsVisitor)
    }
}

struct PartTextsVisitor;

impl<'de> Visitor<'de> for PartTextsVisitor {
    type Value = PartTexts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message content")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PartTexts<'de>, A::Error> {
        let mut texts = Vec::new();
        while let Some(part) = seq.next_element::<Part<'de>>()? {
            if let (Some("output_text"), Some(text)) = (part.kind.as_deref(), part.text) {
                texts.push(text);
            }
        }
        Ok(PartTexts(texts))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PartTexts<'de>, A::Error> {
        drain_map(map).map(|()| PartTexts(Vec::new()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<PartTexts<'de>, E> {
        Ok(PartTexts(Vec::new()))
    }
}

/// A content part: its `type` and `text` (any value but an object is a
/// part of no type).
struct Part<'a> {
    kind: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Part<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PartVisitor)
    }
}

struct PartVisitor;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = Part<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a content part")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part<'de>, A::Error> {
        let mut part = Part { kind: None, text: None };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "type" => part.kind = map.next_value::<Leaf<'de>>()?.into_str(),
                "text" => part.text = map.next_value::<Leaf<'de>>()?.into_str(),
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(part)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Part<'de>, A::Error> {
        drain_seq(seq).map(|()| Part { kind: None, text: None })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Part<'de>, E> {
        Ok(Part { kind: None, text: None })
    }
}

/// What the first choice holds for the answer: its text (a chat choice's
/// `message.content`, a completion's `text`) and `finish_reason`.
struct Choice<'a> {
    text: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
}

/// Reads `choices`: a non-empty array, its first element a [`Choice`]; the
/// others are only checked.
#[derive(Clone, Copy)]
struct ChoicesSeed {
    completions: bool,
}

impl<'de> DeserializeSeed<'de> for ChoicesSeed {
    type Value = Choice<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Choice<'de>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed {
    type Value = Choice<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty array of choices")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choice<'de>, A::Error> {
        let first = seq.next_element_seed(ChoiceSeed { completions: self.completions })?;
        drain_seq(seq)?;
        first.ok_or_else(|| de::Error::invalid_length(0, &self))
    }
}

/// Reads one [`Choice`] object.
#[derive(Clone, Copy)]
struct ChoiceSeed {
    completions: bool,
}

impl<'de> DeserializeSeed<'de> for ChoiceSeed {
    type Value = Choice<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Choice<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChoiceSeed {
    type Value = Choice<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a choice object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choice<'de>, A::Error> {
        let mut choice = Choice { text: None, finish_reason: None };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match (key.0.as_ref(), self.completions) {
                ("finish_reason", _) => choice.finish_reason = map.next_value::<Leaf<'de>>()?.opt_str()?,
                ("text", true) => choice.text = map.next_value::<Leaf<'de>>()?.opt_str()?,
                ("message", false) => choice.text = map.next_value::<Message<'de>>()?.content,
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(choice)
    }
}

/// A chat message object: its `content` when it is a string.
struct Message<'a> {
    content: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let mut message = Message { content: None };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "content" => message.content = map.next_value::<Leaf<'de>>()?.opt_str()?,
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(message)
    }
}

/// The fields of a `usage` object that [`crate::usage::from_openai`]
/// reads, each as it reads it: a count is a number it accepts or nothing;
/// a details field is present (an object or not) or absent.
#[derive(Default)]
struct UsageFields {
    prompt_tokens: Option<u64>,
    input_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    output_tokens_details: Option<Details>,
}

impl UsageFields {
    /// [`crate::usage::from_openai`] of the object these fields came from.
    fn usage(&self) -> Option<Usage> {
        let input = self.prompt_tokens.or(self.input_tokens);
        let output = self.completion_tokens.or(self.output_tokens);
        if input.is_none() && output.is_none() {
            return None;
        }
        let prompt_details = self.prompt_tokens_details.as_ref().or(self.input_tokens_details.as_ref());
        let completion_details = self.completion_tokens_details.as_ref().or(self.output_tokens_details.as_ref());
        Some(Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cached_input_tokens: prompt_details.and_then(|d| d.cached_tokens),
            cache_write_tokens: self.cache_write_tokens.or(prompt_details.and_then(|d| d.cache_write_tokens)),
            reasoning_tokens: completion_details.and_then(|d| d.reasoning_tokens),
        })
    }
}

impl<'de> Deserialize<'de> for UsageFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UsageVisitor)
    }
}

struct UsageVisitor;

impl<'de> Visitor<'de> for UsageVisitor {
    type Value = UsageFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UsageFields, A::Error> {
        let mut u = UsageFields::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "prompt_tokens" => u.prompt_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "input_tokens" => u.input_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "completion_tokens" => u.completion_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "output_tokens" => u.output_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "cache_write_tokens" => u.cache_write_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "prompt_tokens_details" => u.prompt_tokens_details = Some(map.next_value()?),
                "input_tokens_details" => u.input_tokens_details = Some(map.next_value()?),
                "completion_tokens_details" => u.completion_tokens_details = Some(map.next_value()?),
                "output_tokens_details" => u.output_tokens_details = Some(map.next_value()?),
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(u)
    }
}

/// A usage details field: its counts when it is an object, none otherwise
/// (the tree's `get` on anything but an object finds nothing).
#[derive(Default)]
struct Details {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DetailsVisitor)
    }
}

struct DetailsVisitor;

impl<'de> Visitor<'de> for DetailsVisitor {
    type Value = Details;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
        let mut d = Details::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "cached_tokens" => d.cached_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "cache_write_tokens" => d.cache_write_tokens = map.next_value::<Leaf<'de>>()?.count(),
                "reasoning_tokens" => d.reasoning_tokens = map.next_value::<Leaf<'de>>()?.count(),
                _ => skip(&key, &mut map)?,
            }
        }
        Ok(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Details, A::Error> {
        drain_seq(seq).map(|()| Details::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Details, E> {
        Ok(Details::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Details, E> {
        Ok(Details::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Details, E> {
        Ok(Details::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Details, E> {
        Ok(Details::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Details, E> {
        Ok(Details::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Details, E> {
        Ok(Details::default())
    }
}

/// A value where the answer has a string or a count: read as the tree
/// reads it there, or checked and dropped.
enum Leaf<'a> {
    Null,
    /// Borrowed from the body when it has no escapes.
    Str(Cow<'a, str>),
    /// A number as the tree reads a token count: a non-negative integer or
    /// an integral float, else none.
    Count(Option<u64>),
    /// A boolean, an array or an object.
    Other,
}

impl<'a> Leaf<'a> {
    /// A string or `null` (`None`, as the tree leaves a `null` out); any
    /// other value is an error, which leaves the answer to the tree.
    fn opt_str<E: de::Error>(self) -> Result<Option<Cow<'a, str>>, E> {
        match self {
            Leaf::Null => Ok(None),
            Leaf::Str(s) => Ok(Some(s)),
            Leaf::Count(_) | Leaf::Other => Err(de::Error::custom("neither a string nor null")),
        }
    }

    /// The string, as the tree's `as_str` reads one.
    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Leaf::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The token count, as the tree reads one.
    fn count(self) -> Option<u64> {
        match self {
            Leaf::Count(c) => c,
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Leaf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor)
    }
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Count(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Count(u64::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Count(count_of_f64(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Leaf<'de>, A::Error> {
        drain_seq(seq).map(|()| Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Leaf<'de>, A::Error> {
        drain_map(map).map(|()| Leaf::Other)
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

/// The value of a key the answer does not use, checked as the tree would
/// parse it. Keys `serde_json` reserves for its own values (a tree built
/// with its `raw_value` or `arbitrary_precision` features reads them
/// differently) are left to the tree.
fn skip<'de, A: MapAccess<'de>>(key: &Key<'de>, map: &mut A) -> Result<(), A::Error> {
    if key.0.starts_with("$serde_json::private::") {
        return Err(de::Error::custom("a key serde_json reserves"));
    }
    map.next_value::<Checked>().map(|_| ())
}

/// Every element of an array, checked.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Checked>()?.is_some() {}
    Ok(())
}

/// Every key and value of an object, checked.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while let Some(key) = map.next_key::<Key<'de>>()? {
        skip(&key, &mut map)?;
    }
    Ok(())
}

/// Any JSON value, parsed as the tree parses it (unlike
/// `serde::de::IgnoredAny`, which does not check that a number is in
/// range) and kept nowhere.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Checked, A::Error> {
        drain_seq(seq).map(|()| Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked, A::Error> {
        drain_map(map).map(|()| Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{Endpoint, parse_tree};
    use proptest::prelude::*;

    /// The tree's reading of a 2xx `text`.
    fn tree(endpoint: Endpoint, text: &str) -> Result<Answer, crate::Failure> {
        parse_tree(endpoint, 200, &[], text.to_owned())
    }

    /// The typed reading of `text` when it reads it, after checking that it
    /// is exactly the tree's.
    fn same(endpoint: Endpoint, text: &str) -> Option<Answer> {
        let typed = success(endpoint, text.to_owned()).ok()?;
        assert_eq!(Ok(&typed), tree(endpoint, text).as_ref(), "{text}");
        Some(typed)
    }

    const CHAT: Endpoint = Endpoint::ChatCompletions;

    /// Answers as servers send them, each read by the typed path (`true`)
    /// or left to the tree (`false`); where both read, the same answer.
    const SHAPES: &[(&str, bool, &str)] = &[
        (
            "OpenAI",
            true,
            r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,
            "model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant",
            "content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,
            "finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
            "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":
            {"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
            "service_tier":"default","system_fingerprint":null}"#,
        ),
        (
            "the benchmark's mock",
            true,
            r#"{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"echo: hi",
            "refusal":null,"role":"assistant"}}],"created":1764806400,"id":"chatcmpl-mock-7","model":"gpt-4o-mini",
            "object":"chat.completion","system_fingerprint":"fp_mock","usage":{"completion_tokens":3,
            "completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":1,"prompt_tokens_details":
            {"cached_tokens":0},"total_tokens":4}}"#,
        ),
        (
            "vLLM",
            true,
            r#"{"id":"chatcmpl-9f3c","object":"chat.completion","created":1735000000,
            "model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"message":{"role":"assistant",
            "reasoning_content":null,"content":"Paris.","tool_calls":[]},"logprobs":null,"finish_reason":"stop",
            "stop_reason":128009}],"usage":{"prompt_tokens":42,"total_tokens":45,"completion_tokens":3,
            "prompt_tokens_details":null},"prompt_logprobs":null,"kv_transfer_params":null}"#,
        ),
        (
            "llama.cpp",
            true,
            r#"{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant","content":"Once"}}],
            "created":1735000000,"model":"gpt-3.5-turbo","system_fingerprint":"b4500-adc5dd92","object":
            "chat.completion","usage":{"completion_tokens":16,"prompt_tokens":8,"total_tokens":24},
            "id":"chatcmpl-Q0uN4","timings":{"prompt_n":8,"prompt_ms":12.5,"prompt_per_token_ms":1.5625,
            "prompt_per_second":640.0,"predicted_n":16,"predicted_ms":250.01,"predicted_per_second":63.99}}"#,
        ),
        (
            "OpenRouter",
            true,
            r#"{"id":"gen-1735-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion",
            "created":1735000000,"choices":[{"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop",
            "index":0,"message":{"role":"assistant","content":"Hi","refusal":null,"reasoning":null}}],
            "usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11,"cost":0.000035,"is_byok":false,
            "prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":9},
            "completion_tokens_details":{"reasoning_tokens":0}}}"#,
        ),
        (
            "unicode escapes",
            true,
            r#"{"id":"c\u0068at-\u00e9","model":"m\"1\"","choices":[{"message":{"content":
            "caf\u00e9 \ud83d\ude00 \"quoted\"\n\ttab \\ back / sl\/ash \u0000 nul","role":"assistant"},
            "finish_reason":"st\u006fp"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        ),
        ("raw unicode", true, r#"{"choices":[{"message":{"content":"中文 é 😀"}}],"usage":{"prompt_tokens":1}}"#),
        (
            "escaped keys",
            true,
            r#"{"ch\u006fices":[{"m\u0065ssage":{"c\u006fntent":"x"}}],"us\u0061ge":{"pr\u006fmpt_tokens":3}}"#,
        ),
        (
            "Responses-style usage names",
            true,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"input_tokens":5,"output_tokens":6,
            "input_tokens_details":{"cached_tokens":2},"output_tokens_details":{"reasoning_tokens":4}}}"#,
        ),
        (
            "both usage names and details",
            true,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"input_tokens":5,"prompt_tokens":7,
            "output_tokens":6,"input_tokens_details":{"cached_tokens":2},"prompt_tokens_details":[1],
            "completion_tokens_details":7,"output_tokens_details":{"reasoning_tokens":4},"cache_write_tokens":"9"}}"#,
        ),
        (
            "odd counts",
            true,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":2.0,"completion_tokens":-3,
            "prompt_tokens_details":{"cached_tokens":1e17,"cache_write_tokens":2.5},
            "completion_tokens_details":{"reasoning_tokens":18446744073709551615},"cache_write_tokens":1e18}}"#,
        ),
        (
            "huge and negative counts",
            true,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":18446744073709551616,
            "completion_tokens":-0,"prompt_tokens_details":{"cached_tokens":-0.0},"cache_write_tokens":{"a":[1]}}}"#,
        ),
        ("usage with neither count", true, r#"{"choices":[{"message":{"content":"x"}}],"usage":{"total_tokens":3}}"#),
        ("empty usage", true, r#"{"choices":[{"message":{"content":"x"}}],"usage":{}}"#),
        (
            "keys twice",
            true,
            r#"{"model":"a","model":"b","id":"x","id":null,"choices":[{"message":{"content":"one","content":"two"},
            "finish_reason":"stop","finish_reason":null}],"usage":{"prompt_tokens":1,"prompt_tokens":"x",
            "completion_tokens":2},"usage":{"completion_tokens":5}}"#,
        ),
        (
            "more choices and an error beside them",
            true,
            r#"{"choices":[{"message":{"content":"first"}},{"message":{"content":null}},7,"x"],
            "error":{"code":500,"message":"ignored"},"usage":{"prompt_tokens":1}}"#,
        ),
        ("model null", true, r#"{"model":null,"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#),
        (
            "refusal",
            false,
            r#"{"choices":[{"message":{"content":null,"refusal":"I can't"}}],"usage":{"prompt_tokens":1}}"#,
        ),
        (
            "tool calls",
            false,
            r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1}}"#,
        ),
        (
            "empty content",
            false,
            r#"{"choices":[{"message":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":1}}"#,
        ),
        (
            "content parts",
            false,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"}]}}],"usage":{"prompt_tokens":1}}"#,
        ),
        ("no usage", false, r#"{"id":"x","choices":[{"message":{"content":"x"}}]}"#),
        ("usage null", false, r#"{"choices":[{"message":{"content":"x"}}],"usage":null}"#),
        ("usage at the top level", false, r#"{"choices":[{"message":{"content":"x"}}],"usage":3,"prompt_tokens":4}"#),
        ("model a number", false, r#"{"model":4,"choices":[{"message":{"content":"x"}}],"usage":{}}"#),
        (
            "finish_reason an object",
            false,
            r#"{"choices":[{"message":{"content":"x"},"finish_reason":{"type":"stop"}}],"usage":{}}"#,
        ),
        ("no choices", false, r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":0}}"#),
        ("choices an object", false, r#"{"choices":{},"usage":{}}"#),
        ("choice not an object", false, r#"{"choices":["x"],"usage":{}}"#),
        ("message not an object", false, r#"{"choices":[{"message":"x"}],"usage":{}}"#),
        ("a number out of range", false, r#"{"choices":[{"message":{"content":"x"}}],"usage":{},"created":1e999}"#),
        (
            "a number out of range deep inside",
            false,
            r#"{"choices":[{"message":{"content":"x","x":[{"y":-1e400}]}}],"usage":{}}"#,
        ),
        ("a lone surrogate", false, r#"{"choices":[{"message":{"content":"x"}}],"usage":{},"z":"\udc00"}"#),
        ("trailing text", false, r#"{"choices":[{"message":{"content":"x"}}],"usage":{}} x"#),
        ("not an object", false, r#"[{"choices":[{"message":{"content":"x"}}],"usage":{}}]"#),
        (
            "a key serde_json reserves",
            false,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{},"$serde_json::private::RawValue":"1"}"#,
        ),
        ("an embedded error", false, r#"{"error":{"code":502,"message":"Provider returned error"}}"#),
    ];

    #[test]
    fn real_world_answers_read_as_the_tree_reads_them() {
        for (name, typed, body) in SHAPES {
            assert_eq!(same(CHAT, body).is_some(), *typed, "{name}: {body}");
        }
        let a = same(CHAT, SHAPES[5].2).expect("escapes");
        assert_eq!(a.output, "café 😀 \"quoted\"\n\ttab \\ back / sl/ash \u{0} nul");
        assert_eq!(a.metadata.as_deref(), Some(r#"{"finish_reason":"stop","id":"chat-é","model":"m\"1\""}"#));
        let a = same(CHAT, SHAPES[14].2).expect("keys twice");
        assert_eq!((a.output.as_str(), a.metadata.as_deref()), ("two", Some(r#"{"model":"b"}"#)));
        assert_eq!(a.usage, Some(Usage::new(0, 5)));
    }

    #[test]
    fn nesting_too_deep_is_left_to_the_tree() {
        let deep = format!(
            r#"{{"choices":[{{"message":{{"content":"x"}}}}],"usage":{{}},"z":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(success(CHAT, deep.clone()).is_err());
        assert!(tree(CHAT, &deep).is_err());
    }

    #[test]
    fn completions_read_their_text() {
        let body = r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct",
            "choices":[{"text":" there was a fox.","index":0,"logprobs":null,"finish_reason":"length"}],
            "usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}}"#;
        let completions = Endpoint::Completions;
        assert_eq!(same(completions, body).map(|a| a.output).as_deref(), Some(" there was a fox."));
        // A chat answer on the completions endpoint, and the other way round.
        assert!(same(completions, SHAPES[0].2).is_none());
        assert!(same(CHAT, body).is_none());
        assert!(same(completions, r#"{"choices":[{"text":""}],"usage":{}}"#).is_none());
        assert!(success(Endpoint::Embeddings, body.to_owned()).is_err());
    }

    /// Responses API answers as OpenAI sends them, each read by the typed
    /// path (`true`) or left to the tree (`false`).
    const RESPONSES: &[(&str, bool, &str)] = &[
        (
            "with reasoning",
            true,
            r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed",
            "error":null,"incomplete_details":null,"model":"o4-mini-2025-04-16",
            "output":[{"type":"reasoning","id":"rs_1","summary":[]},
                      {"type":"message","id":"msg_1","status":"completed","role":"assistant",
                       "content":[{"type":"output_text","text":"Hello","annotations":[]},
                                  {"type":"output_text","text":" w\u00f6rld","annotations":[],"logprobs":[]}]}],
            "parallel_tool_calls":true,"reasoning":{"effort":"medium","summary":null},"store":true,
            "text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"truncation":"disabled",
            "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},
                     "output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123},
            "user":null,"metadata":{}}"#,
        ),
        (
            "two messages, odd items and parts",
            true,
            r#"{"output":[{"content":[{"text":"a","type":"output_text"}],"type":"message"},7,null,[1],
              {"type":"message","content":"not parts"},{"type":"message","content":[{"type":"refusal",
              "refusal":"no"},"x",{"type":"output_text","text":null},{"type":"output_text","text":"b"}]},
              {"type":null,"content":[{"type":"output_text","text":"c"}]},
              {"type":"message","type":"other","content":[{"type":"output_text","text":"d"}]},
              {"type":"message","content":[{"type":"output_text","text":"e"}],"content":[]}],
            "status":null,"usage":{"input_tokens":1}}"#,
        ),
        (
            "no status, no id",
            true,
            r#"{"output":[{"type":"message","content":[{"type":"output_text","text":"x"}]}],"usage":{}}"#,
        ),
        (
            "function calls",
            false,
            r#"{"status":"completed","output":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}],
            "usage":{"input_tokens":1}}"#,
        ),
        (
            "a refusal",
            false,
            r#"{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"No."}]}],
            "usage":{"input_tokens":1}}"#,
        ),
        (
            "incomplete",
            false,
            r#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"message",
            "content":[{"type":"output_text","text":"partial"}]}],"usage":{"input_tokens":5,"output_tokens":16}}"#,
        ),
        (
            "failed with text",
            false,
            r#"{"status":"failed","output":[{"type":"message","content":[{"type":"output_text","text":"x"}]}],
            "error":{"code":"server_error","message":"boom"},"usage":{}}"#,
        ),
        (
            "status a number",
            false,
            r#"{"status":3,"output":[{"type":"message","content":[{"type":"output_text","text":"x"}]}],"usage":{}}"#,
        ),
        ("no usage", false, r#"{"output":[{"type":"message","content":[{"type":"output_text","text":"x"}]}]}"#),
        ("output an object", false, r#"{"output":{},"usage":{}}"#),
        (
            "a text a number",
            false,
            r#"{"output":[{"type":"message","content":[{"type":"output_text","text":1}]}],"usage":{}}"#,
        ),
    ];

    #[test]
    fn responses_read_as_the_tree_reads_them() {
        for (name, typed, body) in RESPONSES {
            assert_eq!(same(Endpoint::Responses, body).is_some(), *typed, "{name}: {body}");
        }
        let a = same(Endpoint::Responses, RESPONSES[0].2).expect("usual");
        assert_eq!(a.output, "Hello wörld");
        assert_eq!(a.metadata.as_deref(), Some(r#"{"id":"resp_1","model":"o4-mini-2025-04-16","status":"completed"}"#));
        assert_eq!(same(Endpoint::Responses, RESPONSES[1].2).map(|a| a.output).as_deref(), Some("ab"));
        // A chat answer is no response.
        assert!(same(Endpoint::Responses, SHAPES[0].2).is_none());
    }

    /// The bodies of the `classify` fuzz target's seeds and kept crashes,
    /// read as each endpoint's answer: where the typed path reads one, as
    /// the tree does.
    #[test]
    fn fuzz_inputs_read_as_the_tree_reads_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut read = 0;
        for kind in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(dir.join(kind).join("classify")) else { continue };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).expect("read");
                let body = data.windows(2).position(|w| w == b"\n\n").map_or(&[][..], |i| &data[i + 2..]);
                let text = crate::text::body_text(body);
                for endpoint in [CHAT, Endpoint::Completions, Endpoint::Responses] {
                    read += usize::from(same(endpoint, &text).is_some());
                }
            }
        }
        // The mock's chat, completion and Responses answers at least.
        assert!(read >= 3, "{read} fuzz inputs read by the typed path");
    }

    /// One of a few JSON values for a field, some of the right type.
    fn value() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "null",
            "0",
            "7",
            "-1",
            "2.0",
            "2.5",
            "1e3",
            "18446744073709551616",
            "true",
            "\"\"",
            "\"x\"",
            "\"st\\u006fp\"",
            "\"message\"",
            "\"output_text\"",
            "\"failed\"",
            "\"completed\"",
            "[]",
            "[1,{}]",
            "{}",
            r#"{"cached_tokens":3}"#,
            r#"{"reasoning_tokens":2.0}"#,
            r#"{"content":"hi"}"#,
            r#"{"content":null,"refusal":"no"}"#,
            r#"{"content":[{"text":"a"}]}"#,
        ])
        .prop_map(str::to_owned)
    }

    /// An object of some of `keys`, each with a value from `value`, in any
    /// order and possibly twice, after or before the `usual` fields (those
    /// the typed path needs, each there four times in five).
    fn object(
        usual: Vec<(&'static str, BoxedStrategy<String>)>,
        keys: Vec<&'static str>,
        value: BoxedStrategy<String>,
    ) -> BoxedStrategy<String> {
        let usual: Vec<BoxedStrategy<Option<String>>> = usual
            .into_iter()
            .map(|(key, v)| {
                prop_oneof![4 => v.prop_map(move |v| Some(format!("{key:?}:{v}"))), 1 => Just(None)].boxed()
            })
            .collect();
        let others = prop::collection::vec((prop::sample::select(keys), value), 0..3);
        (usual, others, any::<bool>())
            .prop_map(|(usual, others, last)| {
                let others = others.into_iter().map(|(k, v)| format!("{k:?}:{v}"));
                let usual = usual.into_iter().flatten();
                let fields: Vec<String> =
                    if last { others.chain(usual).collect() } else { usual.chain(others).collect() };
                format!("{{{}}}", fields.join(","))
            })
            .boxed()
    }

    /// An answer, mostly of the shape the typed path reads for `endpoint`,
    /// with odd values anywhere.
    fn answer(endpoint: Endpoint) -> impl Strategy<Value = String> {
        let count = prop_oneof![3 => Just("3".to_owned()), 1 => value()].boxed();
        let details = object(
            vec![("cached_tokens", count.clone())],
            vec!["cached_tokens", "cache_write_tokens", "reasoning_tokens", "x"],
            value().boxed(),
        );
        let usage = object(
            vec![("prompt_tokens", count)],
            vec![
                "prompt_tokens",
                "input_tokens",
                "completion_tokens",
                "output_tokens",
                "cache_write_tokens",
                "prompt_tokens_details",
                "input_tokens_details",
                "completion_tokens_details",
                "output_tokens_details",
            ],
            prop_oneof![value(), details].boxed(),
        );
        let text = prop_oneof![3 => Just("\"hi\"".to_owned()), 1 => value()].boxed();
        let message =
            object(vec![("content", text.clone())], vec!["content", "role", "refusal", "tool_calls"], value().boxed());
        let chat =
            object(vec![("message", message.clone())], vec!["message", "finish_reason", "index"], value().boxed());
        let completion = object(
            vec![("text", text.clone())],
            vec!["text", "finish_reason", "message"],
            prop_oneof![value(), message].boxed(),
        );
        let choice = match endpoint {
            Endpoint::Completions => prop_oneof![4 => completion, 1 => chat].boxed(),
            _ => prop_oneof![4 => chat, 1 => completion].boxed(),
        };
        let choices = (prop::collection::vec(choice, 1..3), prop::bool::weighted(0.2))
            .prop_map(|(c, empty)| if empty { "[]".to_owned() } else { format!("[{}]", c.join(",")) })
            .boxed();
        let part_type = prop_oneof![3 => Just("\"output_text\"".to_owned()), 1 => value()].boxed();
        let part =
            object(vec![("type", part_type), ("text", text)], vec!["type", "text", "annotations"], value().boxed());
        let parts = prop::collection::vec(prop_oneof![4 => part, 1 => value()], 0..3)
            .prop_map(|p| format!("[{}]", p.join(",")))
            .boxed();
        let item_type = prop_oneof![3 => Just("\"message\"".to_owned()), 1 => value()].boxed();
        let item = object(
            vec![("type", item_type), ("content", parts.clone())],
            vec!["type", "content", "id", "status"],
            prop_oneof![value(), parts].boxed(),
        );
        let output = prop::collection::vec(prop_oneof![4 => item, 1 => value()], 1..4)
            .prop_map(|i| format!("[{}]", i.join(",")));
        let fields = match endpoint {
            Endpoint::Responses => object(
                vec![("output", output.boxed())],
                vec!["output", "status", "incomplete_details", "usage", "id", "model", "error", "choices"],
                prop_oneof![value(), usage.clone(), Just("null".to_owned()), Just("\"completed\"".to_owned())].boxed(),
            ),
            _ => object(
                vec![("choices", choices.clone())],
                vec!["choices", "usage", "id", "model", "error", "object"],
                prop_oneof![value(), usage.clone(), choices].boxed(),
            ),
        };
        (fields, usage).prop_map(|(fields, usage)| match fields.strip_prefix('{') {
            Some("}") => format!("{{\"usage\":{usage}}}"),
            Some(rest) => format!("{{\"usage\":{usage},{rest}"),
            None => fields,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Whatever the typed path reads, it reads as the tree does.
        #[test]
        fn any_answer_it_reads_is_the_trees(
            (endpoint, body) in prop::sample::select(vec![CHAT, Endpoint::Completions, Endpoint::Responses])
                .prop_flat_map(|e| (Just(e), answer(e)))
        ) {
            let _ = same(endpoint, &body);
        }
    }
}
