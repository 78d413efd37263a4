//! Security: upload_post.
