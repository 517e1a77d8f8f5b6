//! The deterministic row generator behind `pinpipe seed`: posts shaped like the real Pinterest
//! data set (SPEC §1), defects included, because the cleaning and the queries downstream are built
//! around those defects.
//!
//! Every row is a pure function of `(seed, rows, i)`: row `i` draws from its own ChaCha8 stream
//! (the seed expanded into a key, the row number as the stream id), so rows can be generated in any
//! order, in chunks of any size or in parallel and still come out identical. ChaCha8 is named
//! explicitly (not `StdRng`) because its output is fixed across `rand` releases. Weights are
//! integers so no floating-point library call can change a row between platforms.
//!
//! Users repeat like in the real data: `user_data` row `i` names one person out of a pool of
//! `rows / 3`, and a person's name, age and join date come from that person's own stream, so the
//! same person is identical wherever they appear. This module only makes [`Post`] values;
//! [`super::Source::seed`] writes them.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::countries::COUNTRIES;
use super::data::{self, CATEGORIES, Category};
use super::{Geo, Pin, Post, User};

/// The number of rows in the original data set, and the default of `pinpipe seed`.
pub const DEFAULT_ROWS: u64 = 11_154;

/// Stream ids with the top bit set belong to people; rows use the ids below it.
const PERSON_STREAM: u64 = 1 << 63;
/// Geolocation timestamps: 2017-10-01 00:00:00 to 2022-10-31 23:59:59 UTC, in Unix seconds.
const TIMESTAMP_RANGE: (i64, i64) = (1_506_816_000, 1_667_260_799);
/// Users' join dates: 2015-10-01 00:00:00 to 2017-10-31 23:59:59 UTC, in Unix seconds.
const JOINED_RANGE: (i64, i64) = (1_443_657_600, 1_509_494_399);
/// The datetime text format of the source tables and of the emulator's JSON.
pub(crate) const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Generates `rows` posts from `seed`: row `i` has `index`/`ind` = `i`.
///
/// Shorthand for [`Generator::post`] over `0..rows`; use the [`Generator`] to produce rows out of
/// order or in chunks.
pub fn generate(rows: u64, seed: u64) -> impl Iterator<Item = Post> {
    let generator = Generator::new(rows, seed);
    (0..rows).map(move |i| generator.post(i))
}

/// A deterministic source of posts for one `(rows, seed)` pair. Cheap to share across threads:
/// [`Generator::post`] takes `&self`.
#[derive(Debug, Clone)]
pub struct Generator {
    key: [u8; 32],
    people: u64,
    countries: Weighted,
    ages: Weighted,
}

impl Generator {
    /// Prepares the generator for a data set of `rows` posts. `rows` sizes the pool of people
    /// (`rows / 3`, at least one), so the same seed with another row count gives other users.
    pub fn new(rows: u64, seed: u64) -> Self {
        Generator {
            key: ChaCha8Rng::seed_from_u64(seed).get_seed(),
            people: (rows / 3).max(1),
            // Zipf-like: a few countries are common, every one appears. The rank order is a fixed
            // scramble of the list (97 is coprime with 243), with Afghanistan the most common as in
            // the original data.
            countries: Weighted::new((0..COUNTRIES.len() as u64).map(|i| 1_000_000 / ((i * 97) % 243 + 4))),
            // Skewed young: 20 stands out, then each year is 7% rarer than the one before.
            ages: Weighted::new((20..=60u32).scan(1_000_000u64, |w, age| {
                let weight = if age == 20 { 1_400_000 } else { *w };
                if age > 20 {
                    *w = *w * 93 / 100;
                }
                Some(weight)
            })),
        }
    }

    /// The post at row `i` (0-based): its `index`/`ind` is `i`.
    pub fn post(&self, i: u64) -> Post {
        let index = i64::try_from(i).unwrap_or(i64::MAX);
        let mut rng = self.stream(i & !PERSON_STREAM);
        let pin = pin(index, &mut rng);
        let geo = self.geo(index, &mut rng);
        let person = rng.random_range(0..self.people);
        let user = self.person(index, person);
        Post { pin, geo, user }
    }

    fn stream(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream);
        rng
    }

    fn geo(&self, ind: i64, rng: &mut ChaCha8Rng) -> Geo {
        let country = COUNTRIES[self.countries.sample(rng)];
        let timestamp = datetime(rng.random_range(TIMESTAMP_RANGE.0..=TIMESTAMP_RANGE.1));
        // Whole ten-thousandths: about 6 significant digits, like `-45.8508` / `153.8231`.
        let latitude = f64::from(rng.random_range(-900_000..=900_000i32)) / 10_000.0;
        let longitude = f64::from(rng.random_range(-1_800_000..=1_800_000i32)) / 10_000.0;
        Geo { ind, timestamp: Some(timestamp), latitude, longitude, country: Some(country.to_owned()) }
    }

    /// Person `p` of the pool, as they appear at row `ind`.
    fn person(&self, ind: i64, p: u64) -> User {
        let mut rng = self.stream(PERSON_STREAM | p);
        let first_name = pick(&mut rng, data::FIRST_NAMES);
        let last_name = pick(&mut rng, data::LAST_NAMES);
        let age = 20 + self.ages.sample(&mut rng) as i64;
        let date_joined = datetime(rng.random_range(JOINED_RANGE.0..=JOINED_RANGE.1));
        User {
            ind,
            first_name: Some(first_name.to_owned()),
            last_name: Some(last_name.to_owned()),
            age: Some(age),
            date_joined: Some(date_joined),
        }
    }
}

/// One `pinterest_data` row. The shares of the placeholders follow SPEC §1.
fn pin(index: i64, rng: &mut ChaCha8Rng) -> Pin {
    let category = &CATEGORIES[rng.random_range(0..CATEGORIES.len())];
    let unique_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string();
    let media = match rng.random::<f64>() {
        u if u < 0.07 => data::MEDIA_STORY,
        u if u < 0.10 => data::MEDIA_VIDEO,
        _ => data::MEDIA_IMAGE,
    };
    let title = match rng.random::<f64>() {
        u if u < 0.005 => data::NO_TITLE.to_owned(),
        u if u < 0.0055 => String::new(),
        _ => title(category, rng),
    };
    // Story pins never have a description; the other placeholders share out the remaining 93%.
    let description = match rng.random::<f64>() {
        _ if media == data::MEDIA_STORY => data::NO_DESCRIPTION_STORY.to_owned(),
        u if u < 0.005 / 0.93 => data::NO_DESCRIPTION.to_owned(),
        u if u < 0.008 / 0.93 => data::UNTITLED.to_owned(),
        u if u < 0.208 / 0.93 => truncated(description(category, rng), rng),
        _ => description(category, rng),
    };
    let (poster_name, follower_count) = if rng.random::<f64>() < 0.007 {
        (data::USER_INFO_ERROR.to_owned(), data::USER_INFO_ERROR.to_owned())
    } else {
        let mut name = poster_name(category, rng);
        if rng.random::<f64>() < 0.03 {
            name.push(' ');
        }
        (name, follower_count(rng))
    };
    let tag_list = if rng.random::<f64>() < 0.015 {
        data::NO_TAGS.to_owned()
    } else {
        let count = rng.random_range(3..=7);
        let tags: Vec<&str> = category.tags.choose_multiple(rng, count).copied().collect();
        tags.join(",")
    };
    let (image_src, downloaded) = if rng.random::<f64>() < 0.024 {
        (data::IMAGE_SRC_ERROR.to_owned(), 0)
    } else {
        let hex = format!("{:032x}", rng.random::<u128>());
        (format!("https://i.pinimg.com/originals/{}/{}/{}/{hex}.jpg", &hex[0..2], &hex[2..4], &hex[4..6]), 1)
    };
    Pin {
        index,
        unique_id: Some(unique_id),
        title: Some(title),
        description: Some(description),
        poster_name: Some(poster_name),
        follower_count: Some(follower_count),
        tag_list: Some(tag_list),
        is_image_or_video: Some(media.to_owned()),
        image_src: Some(image_src),
        downloaded: Some(downloaded),
        save_location: Some(format!("{}/data/{}", crate::contract::SAVE_PREFIX, category.name)),
        category: Some(category.name.to_owned()),
    }
}

fn title(category: &Category, rng: &mut ChaCha8Rng) -> String {
    let subject = title_case(pick(rng, category.subjects));
    let adjective = pick(rng, data::ADJECTIVES);
    match rng.random_range(0..6) {
        0 => format!("{} {adjective} {subject} Ideas", pick(rng, &[5, 10, 12, 15, 20, 25, 30, 50])),
        1 => format!("{adjective} {subject}"),
        2 => format!("{subject} Inspiration"),
        3 => format!("The Best {subject} for {}", pick(rng, category.settings)),
        4 => format!("{subject} | {}", pick(rng, category.tags)),
        _ => format!("{adjective} {subject} for Beginners"),
    }
}

fn description(category: &Category, rng: &mut ChaCha8Rng) -> String {
    let subject = pick(rng, category.subjects);
    let opener = pick(rng, data::DESCRIPTION_OPENERS).replace("{}", subject);
    let follow_up = pick(rng, data::DESCRIPTION_FOLLOW_UPS).replace("{}", pick(rng, category.settings));
    format!("{opener} {follow_up}")
}

/// Cuts a description at a word boundary and marks it the way the scraper did (`…` + U+00A0).
fn truncated(mut text: String, rng: &mut ChaCha8Rng) -> String {
    let target = rng.random_range(text.len() / 2..text.len());
    let cut = text[..target].rfind(' ').unwrap_or(target);
    text.truncate(cut);
    text.push_str(data::TRUNCATION_MARK);
    text
}

fn poster_name(category: &Category, rng: &mut ChaCha8Rng) -> String {
    let first = pick(rng, data::FIRST_NAMES);
    match rng.random_range(0..4) {
        0 => format!("{first} {}", pick(rng, data::LAST_NAMES)),
        1 => format!("The {} {}", pick(rng, data::ADJECTIVES), pick(rng, data::POSTER_SUFFIXES)),
        2 => format!("{first}'s {}", pick(rng, data::POSTER_SUFFIXES)),
        _ => format!("{} {}", pick(rng, category.tags), pick(rng, data::POSTER_SUFFIXES)),
    }
}

/// `"<n>k"` 74%, plain digits 18% (some `"0"`), `"<n>M"` 7.5%, of all rows; the caller has
/// already taken the 0.7% `User Info Error`.
fn follower_count(rng: &mut ChaCha8Rng) -> String {
    match rng.random::<f64>() * 0.993 {
        u if u < 0.180 => {
            if rng.random_range(0..12) == 0 {
                "0".to_owned()
            } else {
                magnitude(rng).to_string()
            }
        }
        u if u < 0.255 => {
            let millions = if rng.random::<f64>() < 0.7 { rng.random_range(1..=3) } else { rng.random_range(4..=15) };
            format!("{millions}M")
        }
        _ => format!("{}k", magnitude(rng)),
    }
}

/// A number in 1..=999, spread over its three magnitudes like follower counts are.
fn magnitude(rng: &mut ChaCha8Rng) -> u32 {
    match rng.random_range(0..20) {
        0..5 => rng.random_range(1..=9),
        5..14 => rng.random_range(10..=99),
        _ => rng.random_range(100..=999),
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn title_case(text: &str) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        })
        .collect();
    words.join(" ")
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC). The generator's ranges are fixed and far
/// inside chrono's, so the empty fallback is unreachable.
fn datetime(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map(|t| t.format(DATETIME_FORMAT).to_string()).unwrap_or_default()
}

/// Samples an index with probability proportional to integer weights (a cumulative table and a
/// binary search: exact and the same on every platform).
#[derive(Debug, Clone)]
struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u64>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0u64, |total, w| {
                *total += w;
                Some(*total)
            })
            .collect();
        Weighted { cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_does_not_depend_on_the_order_rows_are_made_in() {
        let generator = Generator::new(1_000, 9);
        let forward: Vec<Post> = generate(1_000, 9).collect();
        for i in [999, 0, 500, 1, 998] {
            assert_eq!(generator.post(i), forward[i as usize]);
        }
    }

    #[test]
    fn weighted_sampling_follows_the_weights() {
        let weighted = Weighted::new([1, 0, 3]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 3];
        for _ in 0..4_000 {
            counts[weighted.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((800..1_200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn truncated_descriptions_end_in_an_ellipsis_and_a_no_break_space() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let text = truncated("one two three four five six seven".to_owned(), &mut rng);
        assert!(text.ends_with("…\u{a0}"), "{text:?}");
        assert!(!text.contains(" …"), "cut at a word boundary: {text:?}");
    }

    #[test]
    fn titles_capitalise_every_word() {
        assert_eq!(title_case("off-road truck"), "Off-road Truck");
    }

    #[test]
    fn datetimes_use_the_source_text_format() {
        assert_eq!(datetime(TIMESTAMP_RANGE.0), "2017-10-01 00:00:00");
        assert_eq!(datetime(JOINED_RANGE.1), "2017-10-31 23:59:59");
    }
}
