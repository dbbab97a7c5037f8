"""flowerbed's end-to-end test app."""
