//! The built-in vocabulary the generator writes posts with: categories and their words, people's
//! names, and the placeholder strings of the real data set.
//!
//! No external data is read: every word lives here, so a seed reproduces the same rows on every
//! machine. The placeholders the generator writes (the exact strings the original scraper wrote
//! when a field was missing) belong to the data contract, [`crate::contract`], which the cleaning
//! stage reads too. Feeds [`super::generator`] only.

pub use crate::contract::{
    IMAGE_SRC_ERROR, NO_DESCRIPTION, NO_DESCRIPTION_STORY, NO_TAGS, NO_TITLE, UNTITLED, USER_INFO_ERROR,
};
/// `is_image_or_video` of an ordinary image pin.
pub const MEDIA_IMAGE: &str = "image";
/// `is_image_or_video` of a video pin.
pub const MEDIA_VIDEO: &str = "video";
/// `is_image_or_video` of a story pin; its description is always [`NO_DESCRIPTION_STORY`].
pub const MEDIA_STORY: &str = "multi-video(story page format)";
/// How a truncated description ends in the real data: an ellipsis and a no-break space.
pub(crate) const TRUNCATION_MARK: &str = "…\u{a0}";

/// The words of one category: what its pins are about and how they are tagged.
pub struct Category {
    /// The `category` column value, also the last part of `save_location`.
    pub name: &'static str,
    /// Lower-case subjects, title-cased when they go into a title.
    pub subjects: &'static [&'static str],
    /// Tags as Pinterest shows them (Title Case, may contain spaces).
    pub tags: &'static [&'static str],
    /// Where or when the subject is used, for descriptions ("your living room").
    pub settings: &'static [&'static str],
}

/// The 13 categories of the real data set, in alphabetical order.
#[rustfmt::skip]
pub const CATEGORIES: [Category; 13] = [
    Category {
        name: "art",
        subjects: &["watercolor painting", "abstract art", "pencil drawing", "acrylic pour",
            "portrait sketch", "oil painting", "mandala", "ink illustration", "canvas art",
            "charcoal drawing", "street art", "landscape painting"],
        tags: &["Art Drawings", "Painting Ideas", "Watercolor Art", "Sketch Book", "Art Tutorials",
            "Abstract Painting", "Drawing Ideas", "Canvas Painting", "Art Journal", "Easy Drawings",
            "Art Inspiration", "Acrylic Painting"],
        settings: &["your sketchbook", "a rainy afternoon", "beginners", "your studio wall"],
    },
    Category {
        name: "beauty",
        subjects: &["makeup look", "skincare routine", "nail design", "hairstyle", "eyeshadow palette",
            "braid", "lip color", "face mask", "manicure", "curly hair routine", "eyeliner trick"],
        tags: &["Makeup Tips", "Skin Care", "Nail Art", "Hair Styles", "Beauty Hacks", "Natural Makeup",
            "Nail Designs", "Hair Color", "Eye Makeup", "Skincare Routine", "Beauty Products"],
        settings: &["every day", "a night out", "sensitive skin", "the summer"],
    },
    Category {
        name: "christmas",
        subjects: &["christmas tree", "advent calendar", "christmas wreath", "gingerbread house",
            "stocking", "holiday table", "christmas cookie", "ornament", "nativity scene",
            "christmas card", "holiday garland"],
        tags: &["Christmas Decorations", "Christmas Crafts", "Holiday Decor", "Christmas Tree",
            "Christmas Diy", "Xmas", "Christmas Ornaments", "Christmas Gifts", "Noel",
            "Christmas Cookies", "Winter Wonderland"],
        settings: &["the holidays", "your front door", "the whole family", "Christmas Eve"],
    },
    Category {
        name: "diy-and-crafts",
        subjects: &["paper flower", "macrame hanger", "mason jar craft", "felt garland", "clay earring",
            "crochet blanket", "wood sign", "origami box", "sewing project", "candle", "pallet shelf"],
        tags: &["Diy Crafts", "Crafts For Kids", "Paper Crafts", "Diy Home Decor", "Crochet Patterns",
            "Sewing Projects", "Upcycled Crafts", "Easy Crafts", "Diy Gifts", "Craft Projects",
            "Handmade Gifts"],
        settings: &["a weekend afternoon", "kids", "a small budget", "gift giving"],
    },
    Category {
        name: "education",
        subjects: &["classroom activity", "math worksheet", "reading list", "science experiment",
            "lesson plan", "study tip", "phonics game", "bulletin board", "homeschool schedule",
            "writing prompt", "spelling activity"],
        tags: &["Teaching Ideas", "Classroom Organization", "Homeschool", "Kindergarten", "Study Tips",
            "Math Activities", "Teacher Resources", "Learning Activities", "Reading Comprehension",
            "Back To School", "Elementary Education"],
        settings: &["the classroom", "first grade", "busy teachers", "learning at home"],
    },
    Category {
        name: "event-planning",
        subjects: &["wedding centerpiece", "party favor", "birthday theme", "baby shower idea",
            "bridal shower", "table setting", "balloon arch", "event timeline", "dessert table",
            "graduation party", "photo booth"],
        tags: &["Party Ideas", "Wedding Decorations", "Birthday Party", "Baby Shower", "Event Planning",
            "Party Decorations", "Wedding Planning", "Bridal Shower", "Party Themes", "Diy Party",
            "Event Decor"],
        settings: &["your big day", "a backyard party", "a small budget", "the guests"],
    },
    Category {
        name: "finance",
        subjects: &["budget plan", "savings challenge", "side hustle", "debt payoff plan",
            "money tip", "investing strategy", "budget binder", "frugal habit", "passive income idea",
            "retirement plan", "grocery budget"],
        tags: &["Money Saving Tips", "Budgeting", "Personal Finance", "Saving Money", "Make Money Online",
            "Financial Planning", "Debt Free", "Investing", "Budget Planner", "Frugal Living",
            "Money Management"],
        settings: &["this year", "young families", "beginners", "a single income"],
    },
    Category {
        name: "home-decor",
        subjects: &["living room", "bedroom makeover", "gallery wall", "kitchen shelf", "entryway",
            "bathroom refresh", "reading nook", "farmhouse table", "boho bedroom", "plant corner",
            "mantel display"],
        tags: &["Home Decor", "Living Room Decor", "Bedroom Decor", "Farmhouse Decor", "Interior Design",
            "Home Decor Ideas", "Boho Decor", "Apartment Decor", "Kitchen Decor", "Modern Farmhouse",
            "Cozy Home"],
        settings: &["a small apartment", "your living room", "renters", "a cozy home"],
    },
    Category {
        name: "mens-fashion",
        subjects: &["street style outfit", "suit", "casual look", "leather jacket", "sneaker",
            "watch", "beard style", "capsule wardrobe", "denim outfit", "overcoat", "summer outfit"],
        tags: &["Mens Fashion", "Mens Outfits", "Men Style", "Street Style", "Mens Casual Outfits",
            "Suits", "Mens Fashion Casual", "Menswear", "Stylish Men", "Gentleman Style",
            "Mens Accessories"],
        settings: &["the office", "a date night", "the weekend", "every season"],
    },
    Category {
        name: "quotes",
        subjects: &["inspirational quote", "love quote", "motivational quote", "life lesson",
            "friendship quote", "positive affirmation", "funny quote", "mindset quote",
            "self care quote", "success quote", "morning mantra"],
        tags: &["Inspirational Quotes", "Life Quotes", "Motivational Quotes", "Quotes To Live By",
            "Love Quotes", "Positive Quotes", "Wise Words", "Self Love Quotes", "Words Quotes",
            "Funny Quotes", "Daily Quotes"],
        settings: &["hard days", "a fresh start", "your morning", "someone you love"],
    },
    Category {
        name: "tattoos",
        subjects: &["small tattoo", "sleeve tattoo", "floral tattoo", "minimalist tattoo",
            "wrist tattoo", "script tattoo", "geometric tattoo", "back tattoo", "fine line tattoo",
            "matching tattoo", "ankle tattoo"],
        tags: &["Tattoos", "Small Tattoos", "Tattoo Designs", "Tattoos For Women", "Sleeve Tattoos",
            "Minimalist Tattoo", "Flower Tattoos", "Tattoo Ideas", "Body Art Tattoos", "Fine Line Tattoo",
            "Tattoos For Guys"],
        settings: &["your first tattoo", "couples", "a meaningful reminder", "the summer"],
    },
    Category {
        name: "travel",
        subjects: &["road trip", "beach destination", "packing list", "city guide", "hidden gem",
            "travel itinerary", "mountain hike", "island getaway", "budget trip", "weekend escape",
            "bucket list destination"],
        tags: &["Travel Destinations", "Travel Tips", "Places To Travel", "Travel Photography",
            "Beautiful Places", "Vacation Spots", "Travel Inspiration", "Adventure Travel", "Wanderlust",
            "Travel Guide", "Europe Travel"],
        settings: &["your next vacation", "first-time visitors", "a long weekend", "families"],
    },
    Category {
        name: "vehicles",
        subjects: &["classic car", "sports car", "camper van", "motorcycle", "off-road truck",
            "vintage truck", "muscle car", "electric car", "van conversion", "custom bike",
            "luxury car"],
        tags: &["Cars", "Classic Cars", "Dream Cars", "Sports Cars", "Motorcycles", "Cars Trucks",
            "Luxury Cars", "Vintage Cars", "Muscle Cars", "Van Life", "Car Accessories"],
        settings: &["the open road", "car lovers", "a weekend drive", "your garage"],
    },
];

/// Adjectives shared by all categories, capitalised for titles.
#[rustfmt::skip]
pub(crate) const ADJECTIVES: &[&str] = &[
    "Easy", "Beautiful", "Simple", "Creative", "Cute", "Modern", "Vintage", "Amazing", "Cozy",
    "Minimalist", "Quick", "Stunning", "Unique", "Budget", "Rustic", "Elegant", "Colorful",
    "Classic", "Gorgeous", "Trendy",
];

/// Sentence openers for descriptions; `{}` is replaced by the subject.
#[rustfmt::skip]
pub(crate) const DESCRIPTION_OPENERS: &[&str] = &[
    "Looking for {} ideas? You are in the right place.",
    "Discover the best {} ideas and get inspired.",
    "This {} is easier than it looks.",
    "Find and save ideas about {} on Pinterest.",
    "Here is everything you need to know about this {}.",
    "We love this {} and we think you will too.",
    "Check out our favourite {} of the season.",
];

/// Second sentences of descriptions; `{}` is replaced by a setting of the category.
#[rustfmt::skip]
pub(crate) const DESCRIPTION_FOLLOW_UPS: &[&str] = &[
    "Perfect for {}, with step by step instructions and plenty of photos.",
    "A great choice for {} that anyone can try at home.",
    "Save this pin for {} and come back to it later.",
    "Ideal for {} and surprisingly affordable.",
    "Click through for the full guide, tips for {} and more inspiration.",
];

/// Suffixes of blog-style poster names ("Sarah's Kitchen", "The Crafty Studio").
#[rustfmt::skip]
pub(crate) const POSTER_SUFFIXES: &[&str] = &[
    "Studio", "Blog", "Design", "Magazine", "Co.", "Daily", "Life", "Collective", "Hub", "Journal",
];

/// First names for users and posters (Faker-like, US English).
#[rustfmt::skip]
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Aaron", "Abigail", "Adam", "Alexander", "Alexis", "Alicia", "Amanda", "Amber", "Amy", "Andrea",
    "Andrew", "Angela", "Anna", "Anthony", "Ashley", "Benjamin", "Brandon", "Brian", "Brittany",
    "Caleb", "Carlos", "Catherine", "Charles", "Chelsea", "Christian", "Christina", "Christopher",
    "Cody", "Courtney", "Crystal", "Daniel", "Danielle", "David", "Deborah", "Dennis", "Diana",
    "Dylan", "Elizabeth", "Emily", "Emma", "Eric", "Erica", "Ethan", "Gabriel", "Grace", "Gregory",
    "Hannah", "Heather", "Isaac", "Jacob", "James", "Jasmine", "Jason", "Jeffrey", "Jennifer",
    "Jeremy", "Jessica", "John", "Jonathan", "Jordan", "Joseph", "Joshua", "Julia", "Justin",
    "Karen", "Katherine", "Kayla", "Kevin", "Kimberly", "Kyle", "Laura", "Lauren", "Linda", "Logan",
    "Lucas", "Madison", "Maria", "Mark", "Matthew", "Megan", "Melissa", "Michael", "Michelle",
    "Nathan", "Nicholas", "Nicole", "Olivia", "Patrick", "Rachel", "Rebecca", "Richard", "Robert",
    "Ryan", "Samantha", "Samuel", "Sarah", "Scott", "Sean", "Stephanie", "Steven", "Tiffany",
    "Timothy", "Tyler", "Victoria", "William", "Zachary",
];

/// Last names for users (Faker-like, US English).
#[rustfmt::skip]
pub(crate) const LAST_NAMES: &[&str] = &[
    "Adams", "Allen", "Alvarez", "Anderson", "Bailey", "Baker", "Barnes", "Bell", "Bennett",
    "Brooks", "Brown", "Butler", "Campbell", "Carter", "Castillo", "Chavez", "Clark", "Collins",
    "Cook", "Cooper", "Cox", "Cruz", "Davis", "Diaz", "Edwards", "Evans", "Fisher", "Flores",
    "Foster", "Garcia", "Gomez", "Gonzalez", "Gray", "Green", "Gutierrez", "Hall", "Harris",
    "Hernandez", "Hill", "Howard", "Hughes", "Jackson", "James", "Jenkins", "Johnson", "Jones",
    "Kelly", "Kim", "King", "Lee", "Lewis", "Long", "Lopez", "Martin", "Martinez", "Miller",
    "Mitchell", "Moore", "Morales", "Morgan", "Morris", "Murphy", "Myers", "Nelson", "Nguyen",
    "Ortiz", "Parker", "Patel", "Perez", "Perry", "Peterson", "Phillips", "Powell", "Price",
    "Ramirez", "Reed", "Reyes", "Richardson", "Rivera", "Roberts", "Robinson", "Rodriguez",
    "Rogers", "Ross", "Ruiz", "Sanchez", "Sanders", "Scott", "Smith", "Stewart", "Sullivan",
    "Taylor", "Thomas", "Thompson", "Torres", "Turner", "Walker", "Ward", "Watson", "White",
    "Williams", "Wilson", "Wood", "Wright", "Young",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_the_thirteen_of_the_real_data_in_order() {
        let names: Vec<&str> = CATEGORIES.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 13);
        assert!(CATEGORIES.iter().all(|c| !c.subjects.is_empty() && c.tags.len() >= 8));
    }

    #[test]
    fn placeholder_tag_list_is_the_comma_joined_sentence() {
        let joined: Vec<String> = "No Tags Available".chars().map(String::from).collect();
        assert_eq!(NO_TAGS, joined.join(","));
    }
}
