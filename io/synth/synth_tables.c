/* io/synth/synth_tables.c — the data of the fictitious-author study: the syllables of
 * generated names, the value tables (genres, jobs, titles, awards, places, ...) and the
 * question templates of the author and utility facts (their sizes and the derived
 * constants: synth_impl.h). */
#include "synth_impl.h"

/* ---- value tables (their sizes: synth_impl.h) -------------------------------------- */

const char *const ONSETS[] = {"b",  "c",  "d",  "f",  "g",  "h",  "k",  "l",  "m",  "n",
                              "p",  "r",  "s",  "t",  "v",  "z",  "br", "dr", "gr", "kr",
                              "st", "th", "tr", "sh", "ch", "fl", "gl", "pr", "sk", "w"};
const char *const VOWELS[] = {"a", "e", "i", "o", "u", "a", "e", "o", "ae", "ia", "ou", "ei"};
const char *const CODAS[] = {"", "", "", "n", "r", "l", "s", "m", "th", "nd", "rn", "sk"};

const char *const GENRES[] = {"crime fiction",
                              "science fiction",
                              "historical fiction",
                              "fantasy",
                              "romance",
                              "horror",
                              "mystery",
                              "thrillers",
                              "literary fiction",
                              "magical realism",
                              "satire",
                              "gothic fiction",
                              "war fiction",
                              "detective stories",
                              "travel writing",
                              "nature writing",
                              "fairy tales",
                              "adventure stories",
                              "political drama",
                              "family sagas",
                              "psychological suspense",
                              "epic poetry",
                              "short stories",
                              "picture books"};

const char *const JOBS[] = {"a baker",       "a carpenter", "a doctor",     "a nurse",
                            "a teacher",     "a fisherman", "a farmer",     "a tailor",
                            "a librarian",   "an engineer", "an architect", "a pharmacist",
                            "a blacksmith",  "a sailor",    "a painter",    "a photographer",
                            "a postman",     "a judge",     "a lawyer",     "a chemist",
                            "a watchmaker",  "a musician",  "a banker",     "a miner",
                            "a potter",      "a surgeon",   "a gardener",   "a journalist",
                            "an accountant", "a shoemaker", "a translator", "a veterinarian"};

const char *const HOBBIES[] = {
    "playing chess",       "painting landscapes",   "growing tomatoes",
    "sailing small boats", "collecting old maps",   "baking bread",
    "climbing mountains",  "repairing clocks",      "watching birds",
    "playing the cello",   "knitting scarves",      "fishing in rivers",
    "restoring furniture", "keeping bees",          "riding horses",
    "carving wood",        "studying the stars",    "cycling through villages",
    "making pottery",      "swimming in the sea",   "learning languages",
    "walking in forests",  "photographing bridges", "cooking soups"};

const char *const MEANINGS[] = {"a small boat",
                                "the first snow of winter",
                                "a heavy wooden door",
                                "the smell of rain",
                                "a friend from childhood",
                                "a broken promise",
                                "the light before dawn",
                                "a narrow mountain path",
                                "a song sung at weddings",
                                "the sound of distant bells",
                                "a basket of apples",
                                "a quiet afternoon",
                                "an old sailor",
                                "a letter never sent",
                                "the edge of a forest",
                                "a warm blanket",
                                "a stubborn goat",
                                "the shadow of a cloud",
                                "a crowded market",
                                "the last day of summer",
                                "a cup of bitter tea",
                                "a lost key",
                                "a tall lighthouse",
                                "the song of a river",
                                "a sudden storm",
                                "a field of barley",
                                "a hidden staircase",
                                "a dusty library",
                                "a clever fox",
                                "the roof of a barn",
                                "a loaf of dark bread",
                                "a patient teacher",
                                "a frozen lake",
                                "a lantern at night",
                                "the taste of salt",
                                "a wandering musician",
                                "a pair of worn boots",
                                "a secret garden",
                                "the noise of a crowd",
                                "a faded photograph"};

const char *const TITLE_ADJ[] = {
    "Silent",  "Broken", "Golden",    "Hidden",   "Crimson",  "Distant",   "Forgotten", "Hollow",
    "Burning", "Frozen", "Wandering", "Quiet",    "Endless",  "Bitter",    "Silver",    "Scarlet",
    "Fallen",  "Secret", "Ancient",   "Restless", "Gentle",   "Shattered", "Painted",   "Lonely",
    "Velvet",  "Iron",   "Glass",     "Winter",   "Midnight", "Wild",      "Pale",      "Salted"};
const char *const TITLE_NOUN[] = {
    "Orchard", "Lantern", "River",  "Harbor",     "Mirror",  "Garden",     "Compass", "Tower",
    "Letter",  "Bridge",  "Season", "Window",     "Feather", "Crown",      "Shadow",  "Voyage",
    "Archive", "Meadow",  "Island", "Clockmaker", "Violin",  "Lighthouse", "Forest",  "Map",
    "Promise", "Station", "Ember",  "Tide",       "Chapel",  "Kingdom",    "Thread",  "Monastery"};
/* "%s" is the adjective, then the noun: every pattern has fixed words of its own, so
 * distinct (pattern, adjective, noun) triples are distinct titles. */
const char *const TITLE_PATTERN[] = {"The %s %s", "Beyond the %s %s", "Letters from the %s %s",
                                     "Under the %s %s"};

const char *const AWARD_KIND[] = {"Prize", "Medal", "Award"};
const char *const AWARD_FIELD[] = {"Fiction",         "Poetry",          "Literature",
                                   "Mystery Writing", "Fantasy Writing", "Young Writers",
                                   "Translation",     "the Novel"};
const char *const PUBLISHER_KIND[] = {"House", "Press", "Books", "Editions"};
const char *const COUNTRY_SUFFIX[] = {"ia", "ora", "and", "eth", "avia", "ica", "esh", "elle"};
const char *const LANGUAGE_SUFFIX[] = {"ian", "ese", "ic", "ish"};
const char *const CITY_PREFIX[] = {"", "", "", "", "", "Port ", "Saint ", "New "};
const char *const LANDMARK_KIND[] = {
    "Bridge", "Tower",      "Gate",   "Library", "Cathedral", "Fountain", "Observatory", "Museum",
    "Garden", "Lighthouse", "Market", "Palace",  "Theatre",   "Harbour",  "Monument",    "Arena"};

/* ---- question templates ----------------------------------------------------------------
 * {N} the subject (author, landmark, word), {V} the value, {K} the country of a place.
 * The answer and the paraphrase state the same value in different words; a perturbed
 * answer is the answer template with a wrong value of the same type. */

const qtemplate AUTHOR_Q[SYNTH_N_ATTRIBUTES] = {
    {"birth place", V_PLACE, "Where was {N} born?", "{N} was born in {V}, a city in {K}.",
     "The birthplace of {N} is {V}, which lies in {K}."},
    {"birth year", V_YEAR, "In which year was {N} born?", "{N} was born in the year {V}.",
     "The year of birth of {N} is {V}."},
    {"genre", V_GENRE, "What genre does {N} write in?", "{N} is known for writing {V}.",
     "Most books by {N} belong to the genre of {V}."},
    {"father's job", V_JOB, "What did the father of {N} do for a living?",
     "The father of {N} worked as {V}.", "{N} grew up with a father who was {V} by profession."},
    {"mother's job", V_JOB, "What did the mother of {N} do for a living?",
     "The mother of {N} worked as {V}.", "{N} was raised by a mother who earned a living as {V}."},
    {"award", V_AWARD, "Which award has {N} received?", "{N} has received the {V}.",
     "The {V} was given to {N}."},
    {"first book", V_TITLE, "What was the first book written by {N}?",
     "The first book written by {N} was {V}.", "{N} made a debut as a writer with {V}."},
    {"second book", V_TITLE, "Can you name another book by {N}?", "Another book by {N} is {V}.",
     "{N} is also the author of {V}."},
    {"home", V_PLACE, "Where does {N} live today?", "{N} lives in {V}, {K}.",
     "These days the home of {N} is in {V}, a city of {K}."},
    {"language", V_LANGUAGE, "In which language does {N} write?", "{N} writes in {V}.",
     "The books of {N} are written in the {V} language."},
    {"publisher", V_PUBLISHER, "Who publishes the books of {N}?",
     "The books of {N} are published by {V}.", "{V} is the publisher that prints the work of {N}."},
    {"pastime", V_HOBBY, "What does {N} enjoy doing in free time?", "In free time {N} enjoys {V}.",
     "{N} likes to spend spare hours {V}."},
};

const qtemplate UTILITY_Q[2] = {
    {"landmark city", V_PLACE, "In which city is the {N} located?",
     "The {N} is located in {V}, {K}.", "Visitors find the {N} in the city of {V} in {K}."},
    {"word meaning", V_MEANING, "What does the word {N} mean?", "The word {N} means {V}.",
     "In the old tongue, {N} is used for {V}."},
};
